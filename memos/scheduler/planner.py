"""The scheduler's plan: which memories should move between tiers now, and why.

A plan is read from the store and changes nothing. Per cube, in the order
they are applied:

1. ``decay``: items whose retention fell past a threshold move down a state
   (see :mod:`memos.lifecycle.decay`). The later rules see the states after decay.
2. ``evict_snapshot`` (activation → plaintext): snapshots that are stale, hold
   an item about to be forgotten, or were not used for ``snapshot_idle_days``.
3. ``retire_adapter`` / ``rebuild_adapter`` (parametric → plaintext, or
   retrained): adapters whose sources changed or were forgotten are rebuilt
   from their live sources when at least ``consolidate_min_batch`` remain,
   else retired.
4. ``promote_snapshot`` (plaintext → activation): the hot items (active,
   recalled at least ``hot_min_access`` times, retention at least
   ``hot_min_retention``; most recalled first, at most ``snapshot_max_items``
   and about ``snapshot_max_tokens``) are snapshotted together, unless a
   current snapshot already holds exactly that hot set.
5. ``consolidate`` (plaintext → parametric): stable, often recalled items
   (active or warm, recalled at least ``consolidate_min_access`` times,
   stability at least ``consolidate_min_stability_days``) that no current
   adapter holds are trained into a new adapter, once there are at least
   ``consolidate_min_batch`` of them (at most ``consolidate_max_batch`` a step).

Every rule reaches a fixed point: right after a plan is applied, the next
plan is empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from memos import store
from memos.config import SchedulerPolicy
from memos.lifecycle.decay import decay_change
from memos.records import SEARCHABLE_STATES, State, StateChange
from memos.retention import RetentionPolicy, days_between
from memos.scheduler.steps import (
    Consolidate,
    DecayStep,
    EvictSnapshot,
    PromoteSnapshot,
    RebuildAdapter,
    RetireAdapter,
    Step,
)
from memos.store import artifacts
from memos.store import lifecycle as rows

if TYPE_CHECKING:
    from memos.store.db import Database


@dataclass(frozen=True)
class Plan:
    """The steps a scheduler run would apply at ``at``."""

    at: datetime
    steps: list[Step]

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "steps": [s.to_dict() for s in self.steps]}


@dataclass
class _ItemView:
    id: str
    content_hash: str
    state: str
    access_count: int
    stability: float
    retention: float


@dataclass
class _ArtifactView:
    id: str
    stale: bool
    stale_reason: str | None
    meta: dict[str, Any]
    created_at: datetime
    sources: dict[str, str]  # item id -> content hash it was built from


def build_plan(
    db: Database,
    retention: RetentionPolicy,
    policy: SchedulerPolicy,
    now: datetime,
    cube: str | None = None,
) -> Plan:
    """The plan for one cube (every cube when ``None``) at ``now``."""
    with db.read() as session:
        cubes = store.cube_refs(session, cube)
    steps: list[Step] = []
    for ref in cubes:
        steps.extend(_CubePlanner(db, retention, policy, now, ref.pk, ref.name).steps())
    return Plan(at=now, steps=steps)


class _CubePlanner:
    def __init__(
        self,
        db: Database,
        retention: RetentionPolicy,
        policy: SchedulerPolicy,
        now: datetime,
        cube_pk: int,
        cube: str,
    ) -> None:
        self.db, self.retention, self.policy = db, retention, policy
        self.now, self.cube_pk, self.cube = now, cube_pk, cube

    def steps(self) -> list[Step]:
        items, changes = self._items()
        snapshots, adapters = self._artifacts("kv"), self._artifacts("adapter")
        steps: list[Step] = []
        if changes:
            rule = "retention below thresholds"
            steps.append(DecayStep(self.cube, rule, now=self.now, changes=tuple(changes)))
        kept = [s for s in snapshots if not self._evict(s, items, steps)]
        holding = self._adapters(adapters, items, steps)
        self._promote(items, kept, steps)
        self._consolidate(items, holding, steps)
        return steps

    def _items(self) -> tuple[dict[str, _ItemView], list[StateChange]]:
        """Every live item as it will be after decay, and the decay moves (one scan)."""
        views, changes = {}, []
        with self.db.read() as session:
            found = rows.live_figures(session, self.cube_pk)
        for item in found:
            figures = item.figures
            change = decay_change(self.retention, item.id, self.cube, item.state, figures, self.now)
            if change is not None:
                changes.append(change)
            r = self.retention.retention(figures, self.now)
            after = change.new if change else item.state
            views[item.id] = _ItemView(
                item.id, item.content_hash, after, item.access_count, figures.stability, r
            )
        return views, changes

    def _artifacts(self, kind: str) -> list[_ArtifactView]:
        return [
            _ArtifactView(a.id, a.stale, a.stale_reason, a.meta, a.created_at, a.sources)
            for a in artifacts.with_sources(self.db, kind, self.cube_pk)
        ]

    def _broken(self, artifact: _ArtifactView, items: dict[str, _ItemView]) -> str | None:
        """Why the artifact is or will be stale after decay (None when sound)."""
        if artifact.stale:
            return artifact.stale_reason or "stale"
        for item_id, digest in artifact.sources.items():
            view = items.get(item_id)
            if view is None:
                return "source item deleted"
            if view.state == State.FORGOTTEN:
                return "source item forgotten"
            if view.content_hash != digest:
                return "source item updated"
        return None

    def _evict(
        self, snapshot: _ArtifactView, items: dict[str, _ItemView], steps: list[Step]
    ) -> bool:
        why = self._broken(snapshot, items)
        if why is None:
            last = snapshot.meta.get("last_used_at")
            used = datetime.fromisoformat(last) if last else snapshot.created_at
            idle = days_between(used, self.now)
            if idle >= self.policy.snapshot_idle_days:
                why = f"idle {idle:.1f} d >= {self.policy.snapshot_idle_days:g} d"
        if why is None:
            return False
        steps.append(EvictSnapshot(self.cube, why, artifact=snapshot.id))
        return True

    def _adapters(
        self,
        adapters: list[_ArtifactView],
        items: dict[str, _ItemView],
        steps: list[Step],
    ) -> set[str]:
        """Plan retire/rebuild steps; return the items current adapters will hold."""
        holding: set[str] = set()
        for adapter in adapters:
            why = self._broken(adapter, items)
            if why is None:
                holding.update(adapter.sources)
                continue
            live = [
                i
                for i in adapter.sources
                if i in items and items[i].state in SEARCHABLE_STATES and i not in holding
            ]
            if len(live) >= self.policy.consolidate_min_batch:
                attached = bool(adapter.meta.get("attached"))
                steps.append(
                    RebuildAdapter(
                        self.cube, why, artifact=adapter.id, items=tuple(live), attached=attached
                    )
                )
                holding.update(live)
            else:
                steps.append(RetireAdapter(self.cube, why, artifact=adapter.id))
        return holding

    def _promote(
        self, items: dict[str, _ItemView], snapshots: list[_ArtifactView], steps: list[Step]
    ) -> None:
        p = self.policy
        hot = sorted(
            (
                v
                for v in items.values()
                if v.state == State.ACTIVE
                and v.access_count >= p.hot_min_access
                and v.retention >= p.hot_min_retention
            ),
            key=lambda v: (-v.access_count, -v.retention, v.id),
        )[: p.snapshot_max_items]
        if not hot:
            return
        hot_set = sorted(v.id for v in hot)
        for snapshot in snapshots:
            if snapshot.meta.get("hot_set") == hot_set or set(hot_set) <= set(snapshot.sources):
                return
        rule = f"hot: recalled >= {p.hot_min_access}x, retention >= {p.hot_min_retention:g}"
        step = PromoteSnapshot(
            self.cube,
            rule,
            items=tuple(v.id for v in hot),
            hot_set=tuple(hot_set),
            max_tokens=p.snapshot_max_tokens,
            dtype=p.snapshot_dtype,
        )
        steps.append(step)

    def _consolidate(
        self, items: dict[str, _ItemView], holding: set[str], steps: list[Step]
    ) -> None:
        p = self.policy
        stable = sorted(
            (
                v
                for v in items.values()
                if v.state in (State.ACTIVE, State.WARM)
                and v.id not in holding
                and v.access_count >= p.consolidate_min_access
                and v.stability >= p.consolidate_min_stability_days
            ),
            key=lambda v: (-v.access_count, v.id),
        )
        if len(stable) < p.consolidate_min_batch:
            return
        rule = (
            f"stable: recalled >= {p.consolidate_min_access}x, "
            f"stability >= {p.consolidate_min_stability_days:g} d"
        )
        chosen = [v.id for v in stable[: p.consolidate_max_batch]]
        steps.append(Consolidate(self.cube, rule, items=tuple(chosen)))
