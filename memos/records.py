"""Typed values the SDK hands back: plain frozen dataclasses, never ORM rows."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any


class State(str, Enum):
    """Where an item stands in its lifecycle (stored as its value).

    Decay moves an item down ``active → warm → cold → archived → forgotten``;
    a recall or restore moves it back to ``active``. ``deleted`` is a soft
    delete. Members compare equal to their string values.
    """

    ACTIVE = "active"
    WARM = "warm"
    COLD = "cold"
    ARCHIVED = "archived"
    FORGOTTEN = "forgotten"
    DELETED = "deleted"

    def __str__(self) -> str:
        return self.value


STATES = tuple(State)
#: States plain searches see.
SEARCHABLE_STATES = (State.ACTIVE, State.WARM, State.COLD)
#: The order decay moves items down.
DECAY_ORDER = (State.ACTIVE, State.WARM, State.COLD, State.ARCHIVED, State.FORGOTTEN)
#: States ``restore`` brings back to active.
RESTORABLE = (State.DELETED, State.FORGOTTEN, State.ARCHIVED)
#: States a recall lifts back to active.
REACTIVATED = (State.WARM, State.COLD, State.ARCHIVED)


@dataclass(frozen=True)
class MemoryRecord:
    """One memory item as stored."""

    id: str
    cube: str
    text: str
    content_hash: str
    metadata: dict[str, Any]
    tags: list[str]
    user_id: str | None
    agent_id: str | None
    source_kind: str
    session_id: str | None
    speaker: str | None
    role: str | None
    event_time: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime
    last_accessed_at: datetime | None
    access_count: int
    stability: float
    state: str
    pinned: bool
    trust: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (datetimes as ISO 8601 strings)."""
        return _jsonable(asdict(self))


def distinct(records: Iterable[MemoryRecord]) -> list[MemoryRecord]:
    """Each record once (by id), in the order first seen."""
    return list({record.id: record for record in records}.values())


@dataclass(frozen=True)
class MemoryVersion:
    """One kept version of an item's content."""

    item_id: str
    version: int
    text: str
    content_hash: str
    metadata: dict[str, Any]
    tags: list[str]
    recorded_at: datetime
    reason: str | None

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


@dataclass(frozen=True)
class ScoreParts:
    """How a search hit was scored.

    ``dense`` is the cosine similarity and ``keyword`` the BM25 score (each
    ``None`` when that channel did not return the item); ranks are 1-based.
    ``fused`` is the channels' fused score (``config.fusion``: z-scores or
    reciprocal ranks, with neighbour and query-hint lifts) scaled so the best
    candidate scores 1; others may score below 0.
    ``final = (1 - w) * fused + w * retention`` with the configured weight ``w``.
    """

    dense: float | None
    dense_rank: int | None
    keyword: float | None
    keyword_rank: int | None
    fused: float
    retention: float
    final: float


@dataclass(frozen=True)
class SearchHit:
    """A search result: the item and its score parts."""

    item: MemoryRecord
    score: float
    parts: ScoreParts

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "parts": asdict(self.parts), "item": self.item.to_dict()}


@dataclass(frozen=True)
class CubeStats:
    """Counts and sizes of one cube."""

    cube: str
    items: int
    by_state: dict[str, int]
    versions: int
    tags: int
    embedded: int
    index_entries: int | None
    index_revision: int | None
    revision: int
    oldest: datetime | None
    newest: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


@dataclass(frozen=True)
class ContextBlock:
    """Memories assembled into a prompt block for an agent loop."""

    text: str
    items: list[MemoryRecord]
    tokens: int
    budget_tokens: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "tokens": self.tokens,
            "budget_tokens": self.budget_tokens,
            "items": [item.to_dict() for item in self.items],
        }


@dataclass(frozen=True)
class ImportReport:
    """What an import stored and skipped."""

    imported: int
    skipped: int
    versions: int
    cubes: list[str] = field(default_factory=list)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
