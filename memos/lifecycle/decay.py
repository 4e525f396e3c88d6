"""The decay pass: items move down the states as their retention falls.

``plan_decay`` reads every live, unpinned item and says which ones retention
moves (active → warm → cold → archived → forgotten; never back up, which
only recall and restore do). ``apply_decay`` writes those moves in one
transaction, each only if the item is still in the state it was planned from,
so applying a plan twice, or after the items changed, is harmless. Reaching
archived or forgotten hides an item from plain searches; forgetting is a soft
delete: the item and its history stay, an audit event says why, derived
artifacts built from it become stale, and ``Memos.restore`` brings it back.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import partial

from memos import store
from memos.records import StateChange
from memos.retention import RetentionPolicy
from memos.store import lifecycle as rows
from memos.store.db import Database

_BATCH = 2000


def decay_change(
    policy: RetentionPolicy,
    item_id: str,
    cube: str,
    state: str,
    figures: store.RetentionFigures,
    now: datetime,
) -> StateChange | None:
    """The move retention calls for at ``now``, or ``None`` when the item stays."""
    r = policy.retention(figures, now)
    new = policy.decayed_state(state, r, figures.pinned)
    return StateChange(item_id, cube, state, new, round(r, 6)) if new != state else None


def plan_decay(
    db: Database, policy: RetentionPolicy, now: datetime, cube_pk: int | None = None
) -> list[StateChange]:
    """The state moves retention calls for at ``now`` (nothing is written)."""
    with db.read() as session:
        candidates = rows.decay_candidates(session, cube_pk)
    moves = (
        decay_change(policy, item.id, item.cube, item.state, item.figures, now)
        for item in candidates
    )
    return [m for m in moves if m is not None]


def apply_decay(db: Database, changes: Sequence[StateChange], now: datetime, reason: str) -> int:
    """Write ``changes`` (those still valid); returns how many items moved."""
    moved = 0
    for start in range(0, len(changes), _BATCH):
        chunk = changes[start : start + _BATCH]
        moved += db.write(partial(rows.apply_state_changes, changes=chunk, now=now, reason=reason))
    return moved
