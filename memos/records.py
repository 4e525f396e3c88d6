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


@dataclass
class NewItem:
    """A validated item about to be stored (text already normalized)."""

    text: str
    content_hash: str
    metadata: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    user_id: str | None = None
    agent_id: str | None = None
    source_kind: str = "text"
    session_id: str | None = None
    speaker: str | None = None
    role: str | None = None
    event_time: datetime | None = None
    pinned: bool = False
    trust: float = 1.0
    importance: float = 0.0
    id: str | None = None


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


@dataclass(frozen=True)
class StateChange:
    """One item's move to a lower state."""

    item_id: str
    cube: str
    old: str
    new: str
    retention: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class JobInfo:
    """One job as reported to callers."""

    id: str
    run_id: str
    seq: int
    cube: str | None
    kind: str
    rule: str
    status: str
    attempts: int
    result: dict[str, Any]
    error: str | None
    created_at: datetime
    finished_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        data["finished_at"] = self.finished_at.isoformat() if self.finished_at else None
        return data


@dataclass(frozen=True)
class SnapshotInfo:
    """A registered snapshot as the SDK and CLI report it."""

    id: str
    cube: str
    path: str  # under this home; "" when the recorded file lies outside it
    tokens: int
    items: int
    byte_size: int
    dtype: str
    stale: bool
    stale_reason: str | None
    model_fingerprint: str
    created_at: datetime
    last_used_at: str | None
    scheduled: bool = False

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        return data


@dataclass(frozen=True)
class AdapterInfo:
    """A registered adapter as the SDK and CLI report it.

    ``question_recall`` is the share of held-out questions about its sources it
    answered after training (``None``: none could be asked). When it reaches
    ``config.scheduler.hold_min_recall``, ``held_items`` lists the sources it
    answered every question about: chats with the adapter attached leave them
    out of the prompt. Below the threshold, every source stays in the prompt.
    ``gate_thresholds`` are its memories' gate thresholds, by layer in the order
    of ``layers`` (empty: ungated, see :mod:`memos.parametric.gate`).
    """

    id: str
    cube: str
    path: str  # under this home; "" when the recorded file lies outside it
    layers: list[int]
    rank: int
    items: int
    byte_size: int
    attached: bool
    stale: bool
    stale_reason: str | None
    model_fingerprint: str
    created_at: datetime
    training: dict[str, Any]
    question_recall: float | None = None
    held_items: list[str] = field(default_factory=list)
    gate_thresholds: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        return data


@dataclass(frozen=True)
class Reply:
    """What the model said, and how the memory reached it."""

    text: str
    snapshot_id: str | None
    prompt_tokens: int
    cached_tokens: int
    new_tokens: int
    ttft_s: float
    total_s: float
    context_items: list[str] = field(default_factory=list)  # ids read as plaintext
    adapters: list[str] = field(default_factory=list)  # ids of the adapters on the model

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
