"""Lifecycle rows: the figures retention is computed from, state moves, recalls.

The lifecycle modules (:mod:`memos.lifecycle`) decide; these functions read
the figures they decide on and write what they decided, in the caller's
transaction, each move only if the row is still as it was planned from.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from memos.records import DECAY_ORDER, REACTIVATED, State, StateChange
from memos.retention import RetentionPolicy
from memos.store.conversion import RetentionFigures
from memos.store.events import log_event
from memos.store.items import mark_artifacts_stale, move_state
from memos.store.models import Artifact, ArtifactSource, Cube, Event, Item


@dataclass(frozen=True)
class ItemFigures:
    """One item's state and the figures retention and the scheduler read."""

    id: str
    cube: str
    content_hash: str
    state: str
    access_count: int
    figures: RetentionFigures


def decay_candidates(session: Session, cube_pk: int | None) -> list[ItemFigures]:
    """Items that decay can move (not pinned, not deleted or forgotten), in key order."""
    return _figures(
        session,
        cube_pk,
        Item.state.in_(DECAY_ORDER[:-1]),
        Item.pinned.is_(False),
    )


def live_figures(session: Session, cube_pk: int) -> list[ItemFigures]:
    """Every item of the cube that is not deleted, in key order."""
    return _figures(session, cube_pk, Item.state != State.DELETED)


def _figures(session: Session, cube_pk: int | None, *where: Any) -> list[ItemFigures]:
    stmt = (
        select(
            Item.id,
            Cube.name,
            Item.content_hash,
            Item.state,
            Item.access_count,
            Item.created_at,
            Item.last_accessed_at,
            Item.stability,
            Item.pinned,
        )
        .join(Cube, Cube.pk == Item.cube_pk)
        .where(*where)
        .order_by(Item.pk)
    )
    if cube_pk is not None:
        stmt = stmt.where(Item.cube_pk == cube_pk)
    return [
        ItemFigures(i, cube, h, state, count, RetentionFigures(c, a, s, bool(p)))
        for i, cube, h, state, count, c, a, s, p in session.execute(stmt)
    ]


def apply_state_changes(
    session: Session, changes: Sequence[StateChange], now: datetime, reason: str
) -> int:
    """Write decay moves still valid (the item is still in the planned-from state and
    not pinned); forgetting is a soft delete. Returns how many items moved."""
    wanted = {c.item_id: c for c in changes}
    rows = session.scalars(select(Item).where(Item.id.in_(list(wanted))).with_for_update()).all()
    revisions: dict[int, int] = {}
    forgotten: list[str] = []
    moved = 0
    for item in rows:
        change = wanted[item.id]
        if item.state != change.old or item.pinned:
            continue  # recalled, restored, pinned or moved since the plan
        move_state(session, item, change.new, revisions)
        if change.new == State.FORGOTTEN:
            item.deleted_at = now
            forgotten.append(item.id)
        log_event(
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
        mark_artifacts_stale(session, forgotten, "source item forgotten")
    return moved


@dataclass(frozen=True)
class RecallsApplied:
    """What writing one batch of recalls did."""

    recalls: int
    items: int
    reactivated: int


def apply_recalls(
    session: Session, batch: Sequence[tuple[str, datetime]], policy: RetentionPolicy
) -> RecallsApplied:
    """Apply recalls ``(item id, when)``: access count, last access, stability grown
    by ``policy``, a ``recall`` event each, and a faded item made active again."""
    by_item: dict[str, list[datetime]] = defaultdict(list)
    for item_id, at in batch:
        by_item[item_id].append(at)
    rows = session.scalars(select(Item).where(Item.id.in_(list(by_item))).with_for_update()).all()
    revisions: dict[int, int] = {}
    events: list[dict[str, Any]] = []
    reactivated = 0
    for item in rows:
        if item.state in (State.DELETED, State.FORGOTTEN):
            continue  # gone while the recall waited
        for at in sorted(by_item[item.id]):
            before = item.stability
            retention = policy.retention(item, at)
            # A recall older than the last one (another process's) only counts.
            if item.last_accessed_at is None or at >= item.last_accessed_at:
                item.stability = policy.after_recall(item, at)
                item.last_accessed_at = at
            item.access_count += 1
            events.append(
                {
                    "at": at,
                    "cube_pk": item.cube_pk,
                    "item_id": item.id,
                    "kind": "recall",
                    "details": {
                        "retention": round(retention, 6),
                        "stability_before": before,
                        "stability": item.stability,
                    },
                }
            )
        if item.state in REACTIVATED:
            reactivated += 1
            _reactivate(session, item, revisions)
    if events:
        session.execute(insert(Event), events)
    return RecallsApplied(len(batch), len(rows), reactivated)


def _reactivate(session: Session, item: Item, revisions: dict[int, int]) -> None:
    previous = item.state
    move_state(session, item, State.ACTIVE, revisions)
    log_event(
        session,
        item.last_accessed_at or item.updated_at,
        "state",
        cube_pk=item.cube_pk,
        item_id=item.id,
        reason="recalled",
        details={"from": previous, "to": State.ACTIVE},
    )


@dataclass(frozen=True)
class ArtifactFigures:
    """One kind of artifact in a store (or cube): how many, items held, bytes."""

    artifacts: int
    items: int
    bytes: int
    stale: int
    attached: int


def state_figures(session: Session, cube_pk: int | None) -> list[tuple[str, RetentionFigures]]:
    """``(state, figures)`` of every item (of one cube)."""
    stmt = select(Item.state, Item.created_at, Item.last_accessed_at, Item.stability, Item.pinned)
    if cube_pk is not None:
        stmt = stmt.where(Item.cube_pk == cube_pk)
    return [
        (state, RetentionFigures(created, accessed, stability, bool(pinned)))
        for state, created, accessed, stability, pinned in session.execute(stmt)
    ]


def artifact_figures(session: Session, kind: str, cube_pk: int | None) -> ArtifactFigures:
    """Count, items held (by sound artifacts), bytes, stale and attached of one kind."""
    stmt = select(Artifact).join(Cube).where(Artifact.kind == kind)
    if cube_pk is not None:
        stmt = stmt.where(Artifact.cube_pk == cube_pk)
    rows = session.scalars(stmt).all()
    held = session.scalar(
        select(func.count(func.distinct(ArtifactSource.item_id))).where(
            ArtifactSource.artifact_pk.in_([r.pk for r in rows if not r.stale])
        )
    )
    return ArtifactFigures(
        artifacts=len(rows),
        items=int(held or 0),
        bytes=sum(r.byte_size for r in rows),
        stale=sum(r.stale for r in rows),
        attached=sum(bool((r.meta or {}).get("attached")) for r in rows),
    )


def state_counts(session: Session, tenant: str) -> list[tuple[str, str, int]]:
    """``(stored cube name, state, items)`` of a tenant's cubes, sorted."""
    rows = session.execute(
        select(Cube.name, Item.state, func.count())
        .join(Item, Item.cube_pk == Cube.pk)
        .where(Cube.tenant == tenant)
        .group_by(Cube.name, Item.state)
        .order_by(Cube.name, Item.state)
    ).all()
    return [(name, state, int(n)) for name, state, n in rows]
