"""Where memory stands: tiers, states and retention, for ``memos inspect``."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from memos import store
from memos.records import State
from memos.store.models import Artifact, ArtifactSource, Cube, Item

if TYPE_CHECKING:
    from memos.core import Core

BINS = 10
KINDS = {"kv": "activation", "adapter": "parametric"}


@dataclass(frozen=True)
class TierFigures:
    """One tier's share of a store (or cube)."""

    tier: str
    artifacts: int
    items: int
    bytes: int
    detail: str


@dataclass(frozen=True)
class Inspection:
    """Tier distribution, states and retention histogram at ``at``."""

    at: datetime
    cube: str | None
    items: int
    pinned: int
    by_state: dict[str, int]
    tiers: list[TierFigures]
    retention_bins: list[int]  # counts of R in [0, .1), [.1, .2), ... [.9, 1]
    mean_stability_days: float

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = self.at.isoformat()
        return data


def inspect_store(core: Core, cube: str | None = None) -> Inspection:
    """Figures of one cube (every cube when ``None``) at the clock's now."""
    core.recalls.flush()
    now = core.clock.now()
    cube_pk = core.cube(cube).pk if cube is not None else None
    policy = core.config.retention
    stmt = select(Item.state, Item.created_at, Item.last_accessed_at, Item.stability, Item.pinned)
    if cube_pk is not None:
        stmt = stmt.where(Item.cube_pk == cube_pk)
    states: Counter[str] = Counter()
    bins = [0] * BINS
    stabilities: list[float] = []
    pinned = 0
    with core.db.read() as session:
        for state, created, accessed, stability, is_pinned in session.execute(stmt):
            states[state] += 1
            pinned += bool(is_pinned) and state != State.DELETED
            if state in (State.DELETED, State.FORGOTTEN):
                continue
            r = policy.retention(
                store.RetentionFigures(created, accessed, stability, is_pinned), now
            )
            bins[min(int(r * BINS), BINS - 1)] += 1
            stabilities.append(stability)
        tiers = [_plaintext(states), *(_artifact_tier(session, kind, cube_pk) for kind in KINDS)]
    return Inspection(
        at=now,
        cube=cube,
        items=sum(n for s, n in states.items() if s != State.DELETED),
        pinned=pinned,
        by_state=dict(states),
        tiers=tiers,
        retention_bins=bins,
        mean_stability_days=sum(stabilities) / len(stabilities) if stabilities else 0.0,
    )


def _plaintext(states: Counter[str]) -> TierFigures:
    searchable = sum(states[s] for s in (State.ACTIVE, State.WARM, State.COLD))
    hidden = states[State.ARCHIVED] + states[State.FORGOTTEN]
    return TierFigures("plaintext", 0, searchable, 0, f"{hidden} archived or forgotten")


def _artifact_tier(session: Any, kind: str, cube_pk: int | None) -> TierFigures:
    stmt = select(Artifact).join(Cube).where(Artifact.kind == kind)
    if cube_pk is not None:
        stmt = stmt.where(Artifact.cube_pk == cube_pk)
    rows = session.scalars(stmt).all()
    held = session.scalar(
        select(func.count(func.distinct(ArtifactSource.item_id))).where(
            ArtifactSource.artifact_pk.in_([r.pk for r in rows if not r.stale])
        )
    )
    stale = sum(r.stale for r in rows)
    attached = sum(bool((r.meta or {}).get("attached")) for r in rows)
    detail = f"{stale} stale" + (f", {attached} attached" if kind == "adapter" else "")
    return TierFigures(
        KINDS[kind], len(rows), int(held or 0), sum(r.byte_size for r in rows), detail
    )
