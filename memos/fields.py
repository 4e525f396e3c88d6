"""The fields of the memory API, declared once.

Each typed dict here is the one list of a call's optional fields. The SDK
methods take them as ``**fields: Unpack[ItemFields]`` (so mypy checks every
keyword a caller passes), the ingest rules read the names from them, and the
doors derive their schemas from them: the HTTP request bodies
(:mod:`memos.service.schemas`) and the MCP tool parameters
(:mod:`memos.service.mcp_server`). Adding a field is one line here, its rule in
:mod:`memos.validation` or the ingest code, and its tests.

Types are what the embedded SDK accepts; a door may narrow them on the wire
(an ``event_time`` is an ISO 8601 string in JSON).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, TypedDict

#: A point in time as callers may give it: a datetime, an ISO 8601 string or a
#: Unix timestamp (see :func:`memos.validation.parse_time`).
Timestamp = datetime | str | float

#: Called as ``progress(done, total)`` while long work goes on.
Progress = Callable[[int, int], None]
SnapshotDtype = Literal["float32", "float16", "bfloat16"]
SNAPSHOT_DTYPES: tuple[str, ...] = ("float32", "float16", "bfloat16")
# bfloat16 halves the bytes and is attended in bfloat16 (AMX on recent x86 CPUs):
# time to first token at 2,028 cached tokens 89 ms against 102 ms in float32
# (2 CPU cores, benchmarks/activation.py); float32 stays exact (logits within 5e-5).
DEFAULT_SNAPSHOT_DTYPE: SnapshotDtype = "bfloat16"
DEFAULT_CUBE = "default"
SearchMode = Literal["hybrid", "dense", "keyword"]


class ItemFields(TypedDict, total=False):
    """Optional fields of a memory (``add``, ``add_many``, ``add_messages`` and
    ``add_document`` defaults).

    ``pinned`` items never decay; ``trust`` and ``importance`` are in [0, 1]
    (a more important memory starts more stable, so it fades more slowly).
    """

    metadata: Mapping[str, Any] | None
    tags: Sequence[str] | None
    user_id: str | None
    agent_id: str | None
    source: str
    session_id: str | None
    speaker: str | None
    role: str | None
    event_time: Timestamp | None
    pinned: bool
    trust: float
    importance: float


class UpdateFields(TypedDict, total=False):
    """What ``update`` may change besides the text (each replaces the old value),
    and the ``reason`` recorded with the new version."""

    metadata: Mapping[str, Any] | None
    tags: Sequence[str] | None
    speaker: str | None
    role: str | None
    session_id: str | None
    event_time: Timestamp | None
    pinned: bool
    trust: float
    reason: str


class TrainOptions(TypedDict, total=False):
    """Settings of one consolidation: the fields of
    :class:`memos.parametric.config.TrainConfig` (a test keeps the two equal)."""

    rank: int
    layers: Sequence[int] | None
    steps: int
    batch_size: int
    lr: float
    key_lr: float
    locality_weight: float
    locality_batch: int
    gate: bool
    gate_weight: float
    gate_margin: float
    gate_ramp: float
    target_loss: float
    patience: int
    seed: int
    backend: Literal["auto", "triton", "reference"]


#: What each field means, for the doors' schemas (HTTP and MCP descriptions).
FIELD_DOCS: dict[str, str] = {
    "metadata": "Extra key-value data (JSON, at most 64 KiB).",
    "tags": "Short labels to filter by later.",
    "user_id": "The user the memory is about or from.",
    "agent_id": "The agent that stored it.",
    "source": "Where it came from (default 'text').",
    "session_id": "The conversation it belongs to: turns of one session are neighbours.",
    "speaker": "Who said it.",
    "role": "The speaker's role (user, assistant, ...).",
    "event_time": "When it happened (ISO 8601).",
    "pinned": "Never decays.",
    "trust": "How far to trust it, 0 to 1.",
    "importance": "0 to 1: a more important memory fades more slowly.",
    "reason": "Why it changed (kept in its history).",
}

#: Field names in declaration order: what ingest accepts in an item dict.
ITEM_FIELDS: tuple[str, ...] = ("text", *ItemFields.__annotations__)
UPDATE_FIELDS: tuple[str, ...] = tuple(UpdateFields.__annotations__)
TRAIN_OPTIONS: tuple[str, ...] = tuple(TrainOptions.__annotations__)
