"""Where memory stands: tiers, states and retention, for ``memos inspect``."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from memos.records import State
from memos.store import lifecycle as rows

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
    states: Counter[str] = Counter()
    bins = [0] * BINS
    stabilities: list[float] = []
    pinned = 0
    with core.db.read() as session:
        for state, figures in rows.state_figures(session, cube_pk):
            states[state] += 1
            pinned += figures.pinned and state != State.DELETED
            if state in (State.DELETED, State.FORGOTTEN):
                continue
            r = policy.retention(figures, now)
            bins[min(int(r * BINS), BINS - 1)] += 1
            stabilities.append(figures.stability)
        tiers = [
            _plaintext(states),
            *(
                _artifact_tier(kind, rows.artifact_figures(session, kind, cube_pk))
                for kind in KINDS
            ),
        ]
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


def _artifact_tier(kind: str, figures: rows.ArtifactFigures) -> TierFigures:
    detail = f"{figures.stale} stale" + (
        f", {figures.attached} attached" if kind == "adapter" else ""
    )
    return TierFigures(KINDS[kind], figures.artifacts, figures.items, figures.bytes, detail)


def item_tiers(core: Core, cube: str) -> dict[str, list[str]]:
    """The model tiers holding each item of ``cube`` besides plaintext:
    ``activation`` (a source of a current snapshot) and ``parametric`` (a source
    of a current adapter; ``parametric (attached)`` when the adapter is on)."""
    from memos.store import artifacts

    cube_pk = core.cube(cube).pk
    held: dict[str, list[str]] = {}
    for kind, tier in KINDS.items():
        for artifact in artifacts.with_sources(core.db, kind, cube_pk):
            if artifact.stale:
                continue
            name = f"{tier} (attached)" if artifact.meta.get("attached") else tier
            for item_id in artifact.sources:
                tiers = held.setdefault(item_id, [])
                if name not in tiers:
                    tiers.append(name)
    return held
