"""The scheduler's typed steps: one dataclass per kind of tier migration.

A step says what moves, between which tiers and why (``rule``). Its fields are
what applying it needs; :meth:`Step.payload` is their JSON form, kept on the
job row, and :func:`step_from_job` reads it back, so a job resumed by another
process applies exactly the step that was planned.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any, ClassVar

from memos.parametric.config import TrainConfig
from memos.records import StateChange


@dataclass(frozen=True)
class Step:
    """One migration the scheduler means to make in ``cube``."""

    kind: ClassVar[str]
    from_tier: ClassVar[str]
    to_tier: ClassVar[str]

    cube: str
    rule: str

    def payload(self) -> dict[str, Any]:
        """The step's own fields as JSON values (everything but cube and rule)."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)[2:]}

    @classmethod
    def from_payload(cls, cube: str, rule: str, payload: dict[str, Any]) -> Step:
        """The step :meth:`payload` describes (JSON lists become tuples)."""
        values = {f.name: payload[f.name] for f in fields(cls)[2:]}
        return cls(cube, rule, **{k: _tupled(v) for k, v in values.items()})

    def summary(self) -> str:
        """One line saying what moves."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "cube": self.cube,
            "rule": self.rule,
            "payload": self.payload(),
            "from_tier": self.from_tier,
            "to_tier": self.to_tier,
            "summary": self.summary(),
        }


@dataclass(frozen=True)
class DecayStep(Step):
    """Items whose retention fell past a threshold move down a state."""

    kind: ClassVar[str] = "decay"
    from_tier: ClassVar[str] = "plaintext"
    to_tier: ClassVar[str] = "plaintext"

    now: datetime
    changes: tuple[StateChange, ...]

    def summary(self) -> str:
        moves = Counter(f"{c.old}→{c.new}" for c in self.changes)
        return ", ".join(f"{n} {move}" for move, n in sorted(moves.items()))

    def payload(self) -> dict[str, Any]:
        return {"now": self.now.isoformat(), "changes": [c.to_dict() for c in self.changes]}

    @classmethod
    def from_payload(cls, cube: str, rule: str, payload: dict[str, Any]) -> Step:
        now = datetime.fromisoformat(payload["now"])
        return cls(cube, rule, now, tuple(StateChange(**c) for c in payload["changes"]))


@dataclass(frozen=True)
class EvictSnapshot(Step):
    """A snapshot leaves the activation tier (its items stay in plaintext)."""

    kind: ClassVar[str] = "evict_snapshot"
    from_tier: ClassVar[str] = "activation"
    to_tier: ClassVar[str] = "plaintext"

    artifact: str

    def summary(self) -> str:
        return f"snapshot {self.artifact[:8]}"


@dataclass(frozen=True)
class RetireAdapter(Step):
    """An adapter leaves the parametric tier."""

    kind: ClassVar[str] = "retire_adapter"
    from_tier: ClassVar[str] = "parametric"
    to_tier: ClassVar[str] = "plaintext"

    artifact: str

    def summary(self) -> str:
        return f"adapter {self.artifact[:8]}"


@dataclass(frozen=True)
class RebuildAdapter(Step):
    """An adapter is retrained on its live sources, then the old one retired."""

    kind: ClassVar[str] = "rebuild_adapter"
    from_tier: ClassVar[str] = "parametric"
    to_tier: ClassVar[str] = "parametric"

    artifact: str
    items: tuple[str, ...]
    attached: bool

    def summary(self) -> str:
        return f"adapter {self.artifact[:8]} on {len(self.items)} items"


@dataclass(frozen=True)
class PromoteSnapshot(Step):
    """The hot items are snapshotted together (plaintext → activation)."""

    kind: ClassVar[str] = "promote_snapshot"
    from_tier: ClassVar[str] = "plaintext"
    to_tier: ClassVar[str] = "activation"

    items: tuple[str, ...]
    hot_set: tuple[str, ...]
    max_tokens: int
    dtype: str

    def summary(self) -> str:
        return f"{len(self.items)} items"


@dataclass(frozen=True)
class Consolidate(Step):
    """Stable, often recalled items are trained into an adapter."""

    kind: ClassVar[str] = "consolidate"
    from_tier: ClassVar[str] = "plaintext"
    to_tier: ClassVar[str] = "parametric"

    items: tuple[str, ...]

    def summary(self) -> str:
        return f"{len(self.items)} items"


@dataclass(frozen=True)
class BuildSnapshot(Step):
    """A caller asked for a snapshot of these items (plaintext → activation)."""

    kind: ClassVar[str] = "build_snapshot"
    from_tier: ClassVar[str] = "plaintext"
    to_tier: ClassVar[str] = "activation"

    items: tuple[str, ...]
    max_tokens: int
    dtype: str

    def summary(self) -> str:
        return f"{len(self.items)} items"


@dataclass(frozen=True)
class TrainAdapter(Step):
    """A caller asked for an adapter trained on these items with these settings."""

    kind: ClassVar[str] = "train_adapter"
    from_tier: ClassVar[str] = "plaintext"
    to_tier: ClassVar[str] = "parametric"

    items: tuple[str, ...]
    config: TrainConfig

    def summary(self) -> str:
        return f"{len(self.items)} items, rank {self.config.rank}"

    def payload(self) -> dict[str, Any]:
        config = asdict(self.config)
        config["layers"] = list(self.config.layers) if self.config.layers is not None else None
        return {"items": list(self.items), "config": config}

    @classmethod
    def from_payload(cls, cube: str, rule: str, payload: dict[str, Any]) -> Step:
        config = {k: _tupled(v) for k, v in payload["config"].items()}
        return cls(cube, rule, tuple(payload["items"]), TrainConfig(**config))


STEP_TYPES: dict[str, type[Step]] = {
    cls.kind: cls
    for cls in (
        DecayStep,
        EvictSnapshot,
        RetireAdapter,
        RebuildAdapter,
        PromoteSnapshot,
        Consolidate,
        BuildSnapshot,
        TrainAdapter,
    )
}


def step_from_job(kind: str, cube: str, rule: str, payload: dict[str, Any]) -> Step:
    """The step a job row holds (the inverse of :meth:`Step.payload`)."""
    return STEP_TYPES[kind].from_payload(cube, rule, payload)


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _tupled(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value
