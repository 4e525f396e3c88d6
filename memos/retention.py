"""Forgetting curves: how much of a memory is retained, and what recall does to it.

Retention ``R`` falls with the days ``t`` since an item was last recalled (or
stored, if never), at a pace set by its stability ``S`` (in days):

- ``exponential`` (Ebbinghaus, the default): ``R = exp(-t / S)``; ``S`` is the
  time for ``R`` to fall to 1/e (0.37).
- ``fsrs`` (the FSRS power law): ``R = (1 + 19/81 * t / S) ** -0.5``; ``S`` is
  the time for ``R`` to fall to 0.9, and the long tail forgets far more slowly.

A new item starts at ``S0 = initial_stability_days * (1 + importance_boost *
importance)`` with importance in [0, 1]. Each successful recall sets
``S <- min(S * (1 + recall_gain * (1 - R)), max_stability_days)`` with ``R``
taken at the moment of recall: a recall right after the last one (R near 1)
adds almost nothing, a late one (R low) multiplies S the most. That is the
spacing effect, and it makes cramming useless. Pinned items never decay
(``R = 1``).

``R`` drives the lifecycle state (see :meth:`RetentionPolicy.state_for`):
active, then warm below ``warm_below``, cold below ``cold_below``, archived
below ``archive_below`` and forgotten below ``forget_below``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from memos.clock import as_utc
from memos.errors import ConfigError, InvalidInputError
from memos.records import DECAY_ORDER, State

CURVES = ("exponential", "fsrs")
_FSRS_FACTOR = 19 / 81
_DAY_S = 86_400.0


class Figures(Protocol):
    """What retention is computed from (``MemoryRecord`` and ``Item`` have it)."""

    @property
    def created_at(self) -> datetime: ...
    @property
    def last_accessed_at(self) -> datetime | None: ...
    @property
    def stability(self) -> float: ...
    @property
    def pinned(self) -> bool: ...


def curve_value(curve: str, elapsed_days: float, stability_days: float) -> float:
    """``R`` after ``elapsed_days`` at stability ``stability_days`` on ``curve``."""
    t = max(0.0, elapsed_days)
    s = max(stability_days, 1e-9)
    if curve == "exponential":
        return math.exp(-t / s)
    if curve == "fsrs":
        return float((1.0 + _FSRS_FACTOR * t / s) ** -0.5)
    raise ConfigError(f"retention curve {curve!r}; allowed: {', '.join(CURVES)}")


def days_between(start: datetime, end: datetime) -> float:
    """Days from ``start`` to ``end`` (negative when ``end`` is earlier)."""
    a, b = as_utc(start), as_utc(end)
    assert a is not None and b is not None
    return (b - a).total_seconds() / _DAY_S


@dataclass(frozen=True)
class RetentionPolicy:
    """The forgetting curve, stability updates and state thresholds (see module docs).

    Attributes:
        curve: ``"exponential"`` or ``"fsrs"``.
        initial_stability_days: stability of a new item of importance 0.
        importance_boost: how much importance 1 multiplies the initial stability, minus one.
        recall_gain: how much a recall at ``R = 0`` multiplies stability, minus one.
        max_stability_days: stability never grows past this.
        warm_below, cold_below, archive_below, forget_below: retention thresholds
            of the states after ``active`` (each lower than the one before).
    """

    curve: str = "exponential"
    initial_stability_days: float = 7.0
    importance_boost: float = 4.0
    recall_gain: float = 2.0
    max_stability_days: float = 3650.0
    warm_below: float = 0.6
    cold_below: float = 0.35
    archive_below: float = 0.1
    forget_below: float = 0.01

    def __post_init__(self) -> None:
        if self.curve not in CURVES:
            raise ConfigError(f"retention curve {self.curve!r}; allowed: {', '.join(CURVES)}")
        for name in ("initial_stability_days", "max_stability_days"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}={getattr(self, name)}; allowed: > 0")
        for name in ("importance_boost", "recall_gain"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)}; allowed: >= 0")
        thresholds = (self.warm_below, self.cold_below, self.archive_below, self.forget_below)
        if not 1 >= thresholds[0] > thresholds[1] > thresholds[2] > thresholds[3] >= 0:
            raise ConfigError(
                "retention thresholds must fall: 1 >= warm_below > cold_below > "
                f"archive_below > forget_below >= 0, got {thresholds}"
            )

    def initial_stability(self, importance: float = 0.0) -> float:
        """Stability (days) of a new item of ``importance`` in [0, 1]."""
        if isinstance(importance, bool) or not isinstance(importance, int | float):
            raise InvalidInputError(f"importance must be a number in [0, 1], got {importance!r}")
        if not 0 <= importance <= 1:
            raise InvalidInputError(f"importance must be in [0, 1], got {importance!r}")
        s0 = self.initial_stability_days * (1 + self.importance_boost * importance)
        return min(s0, self.max_stability_days)

    def retention(self, item: Figures, now: datetime) -> float:
        """``R`` of ``item`` at ``now`` (1.0 for pinned items)."""
        if item.pinned:
            return 1.0
        since = item.last_accessed_at or item.created_at
        return curve_value(self.curve, days_between(since, now), item.stability)

    def after_recall(self, item: Figures, now: datetime) -> float:
        """The stability ``item`` has after being recalled at ``now``."""
        r = self.retention(item, now)
        grown = item.stability * (1.0 + self.recall_gain * (1.0 - r))
        return min(max(grown, item.stability), self.max_stability_days)

    def state_for(self, retention: float) -> str:
        """The lifecycle state retention ``R`` calls for."""
        if retention >= self.warm_below:
            return State.ACTIVE
        if retention >= self.cold_below:
            return State.WARM
        if retention >= self.archive_below:
            return State.COLD
        if retention >= self.forget_below:
            return State.ARCHIVED
        return State.FORGOTTEN

    def decayed_state(self, state: str, retention: float, pinned: bool) -> str:
        """Where decay moves an item: never back up (recall does that), never when pinned."""
        if pinned or state not in DECAY_ORDER:
            return state
        target = self.state_for(retention)
        return max(state, target, key=DECAY_ORDER.index)

    def days_until(self, retention: float, stability_days: float) -> float:
        """Days after a recall until ``R`` falls to ``retention`` (for docs and plots)."""
        if not 0 < retention < 1:
            raise InvalidInputError(f"retention must be in (0, 1), got {retention!r}")
        if self.curve == "exponential":
            return -stability_days * math.log(retention)
        return stability_days * (retention**-2 - 1) / _FSRS_FACTOR
