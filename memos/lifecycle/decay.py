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
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from memos import store
from memos.lifecycle.retention import RetentionPolicy
from memos.records import DECAY_ORDER, State
from memos.store.db import Database
from memos.store.models import Cube, Item

_BATCH = 2000


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
    stmt = (
        select(
            Item.id,
            Cube.name,
            Item.state,
            Item.created_at,
            Item.last_accessed_at,
            Item.stability,
        )
        .join(Cube, Cube.pk == Item.cube_pk)
        .where(Item.state.in_(DECAY_ORDER[:-1]), Item.pinned.is_(False))
        .order_by(Item.pk)
    )
    if cube_pk is not None:
        stmt = stmt.where(Item.cube_pk == cube_pk)
    with db.read() as session:
        moves = (
            decay_change(policy, item_id, cube, state, store.RetentionFigures(c, a, s, False), now)
            for item_id, cube, state, c, a, s in session.execute(stmt)
        )
        return [m for m in moves if m is not None]


def apply_decay(db: Database, changes: Sequence[StateChange], now: datetime, reason: str) -> int:
    """Write ``changes`` (those still valid); returns how many items moved."""
    moved = 0
    for start in range(0, len(changes), _BATCH):
        chunk = changes[start : start + _BATCH]
        moved += db.write(partial(_apply, changes=chunk, now=now, reason=reason))
    return moved


def _apply(session: Session, changes: Sequence[StateChange], now: datetime, reason: str) -> int:
    wanted = {c.item_id: c for c in changes}
    rows = session.scalars(select(Item).where(Item.id.in_(list(wanted))).with_for_update()).all()
    revisions: dict[int, int] = {}
    forgotten: list[str] = []
    moved = 0
    for item in rows:
        change = wanted[item.id]
        if item.state != change.old or item.pinned:
            continue  # recalled, restored, pinned or moved since the plan
        store.move_state(session, item, change.new, revisions)
        if change.new == State.FORGOTTEN:
            item.deleted_at = now
            forgotten.append(item.id)
        store.log_event(
            session,
            now,
            "forget" if change.new == State.FORGOTTEN else "state",
            cube_pk=item.cube_pk,
            item_id=item.id,
            reason=reason,
            details={"from": change.old, "to": change.new, "retention": change.retention},
        )
        moved += 1
    if forgotten:
        store.mark_artifacts_stale(session, forgotten, "source item forgotten")
    return moved
