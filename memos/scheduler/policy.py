"""Thresholds of the tier scheduler (a light module: configs import it).

What each rule does is described in :mod:`memos.scheduler.planner`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from memos.errors import ConfigError


@dataclass(frozen=True)
class SchedulerPolicy:
    """Thresholds of the scheduler's rules (see the module docs for each rule).

    ``train`` holds :class:`memos.parametric.config.TrainConfig` fields for the
    adapters the scheduler trains; ``attach_adapters`` attaches them at once
    (off by default: attached adapters make KV snapshots unusable, because the
    snapshots were computed without them). An attached adapter whose question
    recall on held-out wordings of its sources reaches ``hold_min_recall``
    holds the sources it answered: chats with it leave them out of the prompt.
    ``interval_minutes`` is how often the background mode runs.
    """

    hot_min_access: int = 3
    hot_min_retention: float = 0.8
    snapshot_max_items: int = 64
    snapshot_max_tokens: int = 1024
    snapshot_dtype: str = "bfloat16"  # memos.activation.snapshot.DEFAULT_DTYPE
    snapshot_idle_days: float = 14.0
    consolidate_min_access: int = 5
    consolidate_min_stability_days: float = 30.0
    consolidate_min_batch: int = 8
    consolidate_max_batch: int = 64
    train: Mapping[str, Any] = field(default_factory=dict)
    attach_adapters: bool = False
    hold_min_recall: float = 0.9
    interval_minutes: float = 30.0

    def __post_init__(self) -> None:
        for name in (
            "hot_min_access",
            "snapshot_max_items",
            "snapshot_max_tokens",
            "consolidate_min_access",
            "consolidate_min_batch",
            "consolidate_max_batch",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)}; allowed: >= 1")
        if self.consolidate_max_batch < self.consolidate_min_batch:
            raise ConfigError("consolidate_max_batch must be >= consolidate_min_batch")
        for name in ("hot_min_retention", "hold_min_recall"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"{name}={getattr(self, name)}; allowed: 0..1")
        if self.snapshot_idle_days <= 0 or self.interval_minutes <= 0:
            raise ConfigError("snapshot_idle_days and interval_minutes must be > 0")
