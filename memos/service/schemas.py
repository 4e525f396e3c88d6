"""Request and error bodies of the HTTP API (pydantic), so the OpenAPI schema is exact.

Responses reuse the SDK's frozen records (:mod:`memos.records`), which FastAPI
serialises as they are: the remote SDK rebuilds the same records from them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from memos.plaintext.filters import SearchFilter

# Strict numbers and flags: JSON false is not 0, 1 is not true.
SFloat = Annotated[float, Field(strict=True)]
SBool = Annotated[bool, Field(strict=True)]
Scalar = str | int | float | bool


def _iso(value: Any) -> Any:
    if not isinstance(value, str | datetime):
        raise ValueError("expected an ISO 8601 date-time string")
    return value


#: A date-time given as an ISO 8601 string (not a number).
When = Annotated[datetime, Field(strict=False), BeforeValidator(_iso)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    def fields(self) -> dict[str, Any]:
        """The fields the caller set (unset ones keep the library's defaults)."""
        return self.model_dump(exclude_unset=True, exclude_none=True)


class ItemFields(_Body):
    """Optional fields of a memory (see ``Memos.add``)."""

    metadata: dict[str, Any] | None = None
    tags: list[str] | None = None
    user_id: str | None = None
    agent_id: str | None = None
    source: str | None = None
    session_id: str | None = None
    speaker: str | None = None
    role: str | None = None
    event_time: When | None = None
    pinned: SBool | None = None
    trust: SFloat | None = None
    importance: SFloat | None = None


class AddIn(ItemFields):
    text: str


class AddManyIn(_Body):
    items: list[AddIn] = Field(max_length=10_000)


class MessageIn(_Body):
    role: str
    content: str
    name: str | None = None
    timestamp: When | None = None
    metadata: dict[str, Any] | None = None


class MessagesIn(_Body):
    messages: list[MessageIn] = Field(max_length=10_000)
    prefix_speaker: SBool = True
    defaults: ItemFields | None = None


class DocumentIn(ItemFields):
    text: str


class UpdateIn(_Body):
    text: str | None = None
    metadata: dict[str, Any] | None = None
    tags: list[str] | None = None
    speaker: str | None = None
    role: str | None = None
    session_id: str | None = None
    event_time: When | None = None
    pinned: SBool | None = None
    trust: SFloat | None = None
    reason: str | None = None


class FilterIn(_Body):
    """Which items a search, context or listing may return (see ``SearchFilter``)."""

    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    speaker: str | None = None
    role: str | None = None
    tags: list[str] | None = None
    states: list[str] | None = None
    since: When | None = None
    until: When | None = None
    metadata: dict[str, Scalar] | None = None

    def to_filter(self) -> SearchFilter:
        return SearchFilter.from_value(self.fields())


class SearchIn(_Body):
    query: str
    k: int = Field(10, ge=1, le=1000, strict=True)
    mode: Literal["hybrid", "dense", "keyword"] = "hybrid"
    filter: FilterIn | None = None


class ContextIn(_Body):
    query: str
    budget_tokens: int = Field(512, ge=1, le=1_000_000, strict=True)
    k: int = Field(20, ge=1, le=1000, strict=True)
    filter: FilterIn | None = None


class MarkUsedIn(_Body):
    ids: list[str] = Field(min_length=1, max_length=10_000)


class DecayIn(_Body):
    dry_run: SBool = False


CUBE_NAME = r"^[A-Za-z0-9_.@:\-]{1,200}$"


class CubeIn(_Body):
    name: str = Field(pattern=CUBE_NAME)


class CubeList(BaseModel):
    cubes: list[str]


class RunQueued(BaseModel):
    """A queued scheduler run: its jobs, in the order they will be applied."""

    run_id: str
    jobs: list[str]


class Health(BaseModel):
    status: str
    schema_revision: str | None = None


class ErrorOut(BaseModel):
    """Every error: the typed error's name, a message, and details when there are any."""

    error: str
    message: str
    detail: Any = None
