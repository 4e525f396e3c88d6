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
    exclude_ids: list[str] | None = Field(default=None, max_length=10_000)

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


class SnapshotIn(_Body):
    """What to snapshot (see ``Memos.build_snapshot``): the given items, else the
    best for ``query``, else the newest."""

    items: list[str] | None = Field(None, min_length=1, max_length=10_000)
    query: str | None = None
    max_tokens: int = Field(1024, ge=16, le=1_000_000, strict=True)
    dtype: Literal["float32", "float16", "bfloat16"] = "bfloat16"  # snapshot.DEFAULT_DTYPE


class TrainIn(_Body):
    """What to consolidate and how (see ``Memos.consolidate`` and ``TrainConfig``):
    the given items, else the cube's items matching ``filter``. Unset settings
    keep ``TrainConfig``'s defaults."""

    items: list[str] | None = Field(None, min_length=1, max_length=10_000)
    filter: FilterIn | None = None
    rank: int | None = Field(None, ge=1, le=4096, strict=True)
    layers: list[Annotated[int, Field(ge=0, strict=True)]] | None = Field(
        None, min_length=1, max_length=256
    )
    steps: int | None = Field(None, ge=1, le=100_000, strict=True)
    batch_size: int | None = Field(None, ge=1, le=4096, strict=True)
    lr: float | None = Field(None, gt=0, le=10, strict=True)
    locality_weight: float | None = Field(None, ge=0, le=100, strict=True)
    locality_batch: int | None = Field(None, ge=1, le=4096, strict=True)
    gate: bool | None = Field(None, strict=True)
    target_loss: float | None = Field(None, ge=0, strict=True)
    patience: int | None = Field(None, ge=1, le=10_000, strict=True)
    seed: int | None = Field(None, ge=0, strict=True)
    backend: Literal["auto", "triton", "reference"] | None = None

    def train_options(self) -> dict[str, Any]:
        """The ``TrainConfig`` fields the caller set."""
        options = self.fields()
        options.pop("items", None)
        options.pop("filter", None)
        if "layers" in options:
            options["layers"] = tuple(options["layers"])
        return options


class ChatTurn(_Body):
    role: Literal["user", "assistant"]
    content: str


class ChatIn(_Body):
    """A message to answer with the cube's memories (see ``Memos.chat``)."""

    message: str
    history: list[ChatTurn] = Field(default_factory=list, max_length=1000)
    max_new_tokens: int = Field(64, ge=1, le=4096, strict=True)
    use_snapshot: SBool = True


CUBE_NAME = r"^[A-Za-z0-9_.@:\-]{1,200}$"


class CubeIn(_Body):
    name: str = Field(pattern=CUBE_NAME)


class CubeList(BaseModel):
    cubes: list[str]


class RunQueued(BaseModel):
    """Queued work (a scheduler run, a snapshot build, a training): its jobs, in
    the order they will be applied."""

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
