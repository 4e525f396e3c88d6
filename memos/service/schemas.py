"""Request and error bodies of the HTTP API (pydantic), so the OpenAPI schema is exact.

The bodies that carry a call's optional fields are made from the field lists of
:mod:`memos.fields` by :func:`body_of`, so a field added there is a field of
the API (and of the MCP tools) with no second list to keep. On the wire, types
are strict (JSON ``false`` is not ``0``) and times are ISO 8601 strings.

Responses reuse the SDK's frozen records (:mod:`memos.records`), which FastAPI
serialises as they are: the remote SDK rebuilds the same records from them.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

from memos import fields as api_fields
from memos.filters import MAX_EXCLUDED, SearchFilter
from memos.validation import CUBE_NAME_MAX_CHARS

# Strict numbers and flags: JSON false is not 0, 1 is not true.
SFloat = Annotated[float, Field(strict=True)]
SInt = Annotated[int, Field(strict=True)]
SBool = Annotated[bool, Field(strict=True)]
Scalar = str | int | float | bool
#: Most entries one request may carry (items, messages, ids).
MAX_BATCH = 10_000


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


_TIMESTAMP = set(typing.get_args(api_fields.Timestamp))


def wire_type(kind: Any) -> Any:
    """The JSON form of an SDK field type: strict scalars, ISO times, lists, dicts."""
    origin = typing.get_origin(kind)
    if origin in (Union, types.UnionType):
        parts = list(typing.get_args(kind))
        if set(parts) >= _TIMESTAMP:  # a point in time travels as an ISO 8601 string
            parts = [When, *(p for p in parts if p not in _TIMESTAMP)]
        return Union[tuple(p if p is When else wire_type(p) for p in parts)]  # noqa: UP007
    if origin is Literal or kind is type(None) or kind is Any:
        return kind
    if origin is not None and issubclass(origin, Mapping):
        key, value = typing.get_args(kind)
        return dict[key, value]  # type: ignore[valid-type]
    if origin is not None and issubclass(origin, Sequence):
        (entry,) = typing.get_args(kind)
        return list[wire_type(entry)]  # type: ignore[misc]
    return {bool: SBool, float: SFloat, int: SInt, str: str}[kind]


def body_of(name: str, typed: type, *, doc: str, **extra: Any) -> type[_Body]:
    """A request body whose optional fields are those of the typed dict ``typed``
    (each ``None`` by default: unset fields keep the library's defaults), plus
    ``extra`` fields given as ``(type, default)``."""
    hints = typing.get_type_hints(typed)
    definitions: dict[str, Any] = {
        field: (wire_type(kind) | None, None) for field, kind in hints.items()
    }
    definitions.update(extra)
    model = create_model(name, __base__=_Body, __doc__=doc, **definitions)
    return model


if TYPE_CHECKING:  # made at run time from the field lists; plain bodies to mypy
    ItemFields: TypeAlias = _Body
    AddIn: TypeAlias = _Body
    DocumentIn: TypeAlias = _Body
    UpdateIn: TypeAlias = _Body
else:
    ItemFields = body_of(
        "ItemFields", api_fields.ItemFields, doc="Optional fields of a memory (see ``Memos.add``)."
    )
    AddIn = body_of(
        "AddIn",
        api_fields.ItemFields,
        doc="One memory to store (see ``Memos.add``).",
        text=(str, ...),
    )
    DocumentIn = body_of(
        "DocumentIn",
        api_fields.ItemFields,
        doc="A long text to store as chunks (see ``Memos.add_document``).",
        text=(str, ...),
    )
    UpdateIn = body_of(
        "UpdateIn",
        api_fields.UpdateFields,
        doc="A new version of an item (see ``Memos.update``); unset fields are kept.",
        text=(str | None, None),
    )


class AddManyIn(_Body):
    items: list[AddIn] = Field(max_length=MAX_BATCH)


class MessageIn(_Body):
    role: str
    content: str
    name: str | None = None
    timestamp: When | None = None
    session_id: str | None = None
    metadata: dict[str, Any] | None = None


class MessagesIn(_Body):
    messages: list[MessageIn] = Field(max_length=MAX_BATCH)
    prefix_speaker: SBool = True
    defaults: ItemFields | None = None


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
    exclude_ids: list[str] | None = Field(default=None, max_length=MAX_EXCLUDED)

    def to_filter(self) -> SearchFilter:
        return SearchFilter.from_value(self.fields())


class SearchIn(_Body):
    query: str
    k: int = Field(10, ge=1, le=1000, strict=True)
    mode: api_fields.SearchMode = "hybrid"
    filter: FilterIn | None = None


class ContextIn(_Body):
    query: str
    budget_tokens: int = Field(512, ge=1, le=1_000_000, strict=True)
    k: int = Field(20, ge=1, le=1000, strict=True)
    filter: FilterIn | None = None


class ListIn(_Body):
    """A page of a cube's items, newest first (see ``Memos.list``)."""

    filter: FilterIn | None = None
    limit: int = Field(50, ge=1, le=1000, strict=True)
    offset: int = Field(0, ge=0, strict=True)


class MarkUsedIn(_Body):
    ids: list[str] = Field(min_length=1, max_length=MAX_BATCH)


class DecayIn(_Body):
    dry_run: SBool = False
    now: When | None = None


class SnapshotIn(_Body):
    """What to snapshot (see ``Memos.build_snapshot``): the given items, else the
    best for ``query``, else the newest."""

    items: list[str] | None = Field(None, min_length=1, max_length=MAX_BATCH)
    query: str | None = None
    max_tokens: int = Field(1024, ge=16, le=1_000_000, strict=True)
    dtype: api_fields.SnapshotDtype = api_fields.DEFAULT_SNAPSHOT_DTYPE


if TYPE_CHECKING:

    class TrainIn(_Body):
        items: list[str] | None
        filter: FilterIn | None

else:
    TrainIn = body_of(
        "TrainIn",
        api_fields.TrainOptions,
        doc="What to consolidate and how (see ``Memos.consolidate``): the given items, else "
        "the cube's items matching ``filter``. Unset settings keep ``TrainConfig``'s defaults.",
        items=(list[str] | None, Field(None, min_length=1, max_length=MAX_BATCH)),
        filter=(FilterIn | None, None),
    )


def train_options(body: BaseModel) -> dict[str, Any]:
    """The ``TrainOptions`` a training body sets."""
    options = body.model_dump(exclude_unset=True, exclude_none=True)
    options.pop("items", None)
    options.pop("filter", None)
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


class CubeIn(_Body):
    name: str = Field(min_length=1, max_length=CUBE_NAME_MAX_CHARS)
    owner_id: str | None = None


class Limits(BaseModel):
    """The store's limits the remote SDK checks before sending (as the embedded SDK does)."""

    max_text_chars: int


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
