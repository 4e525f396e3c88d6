"""Forgetting curves, stability growth and state thresholds (pure functions)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest

from memos.errors import ConfigError, InvalidInputError
from memos.retention import RetentionPolicy, curve_value

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


@dataclass
class Fig:
    created_at: datetime = T0
    last_accessed_at: datetime | None = None
    stability: float = 7.0
    pinned: bool = False


def test_curves_match_their_formulas() -> None:
    assert curve_value("exponential", 0, 5) == 1.0
    assert curve_value("exponential", 5, 5) == pytest.approx(math.exp(-1))
    assert curve_value("exponential", 12, 4) == pytest.approx(math.exp(-3))
    # FSRS: S is the time to R = 0.9
    assert curve_value("fsrs", 10, 10) == pytest.approx(0.9)
    assert curve_value("fsrs", 3, 2) == pytest.approx((1 + 19 / 81 * 1.5) ** -0.5)
    with pytest.raises(ConfigError, match="allowed"):
        curve_value("linear", 1, 1)


def test_retention_counts_from_last_access_and_pinned_never_decays() -> None:
    policy = RetentionPolicy()
    fresh = Fig(last_accessed_at=T0 + timedelta(days=10))
    assert policy.retention(fresh, T0 + timedelta(days=10)) == 1.0
    assert policy.retention(Fig(), T0 + timedelta(days=7)) == pytest.approx(math.exp(-1))
    assert policy.retention(Fig(pinned=True), T0 + timedelta(days=3650)) == 1.0


def test_initial_stability_grows_with_importance() -> None:
    policy = RetentionPolicy(initial_stability_days=7, importance_boost=4)
    assert policy.initial_stability(0) == 7
    assert policy.initial_stability(1) == 35
    assert policy.initial_stability(0.5) == 21
    for bad in (-0.1, 1.5, "high", True):
        with pytest.raises(InvalidInputError, match="importance"):
            policy.initial_stability(bad)  # type: ignore[arg-type]


def test_late_recall_raises_stability_more_than_early_recall() -> None:
    policy = RetentionPolicy()
    early = policy.after_recall(Fig(), T0 + timedelta(hours=1))
    late = policy.after_recall(Fig(), T0 + timedelta(days=10))
    assert 7.0 <= early < 7.1  # cramming adds almost nothing
    r_late = math.exp(-10 / 7)
    assert late == pytest.approx(7 * (1 + 2 * (1 - r_late)))
    assert late > 2 * 7 * 0.9
    capped = RetentionPolicy(max_stability_days=10).after_recall(Fig(), T0 + timedelta(days=30))
    assert capped == 10


def test_states_follow_thresholds_and_decay_never_promotes() -> None:
    policy = RetentionPolicy()
    assert [policy.state_for(r) for r in (0.9, 0.6, 0.5, 0.2, 0.05, 0.001)] == [
        "active",
        "active",
        "warm",
        "cold",
        "archived",
        "forgotten",
    ]
    assert policy.decayed_state("cold", 0.9, pinned=False) == "cold"
    assert policy.decayed_state("active", 0.2, pinned=False) == "cold"
    assert policy.decayed_state("active", 0.0, pinned=True) == "active"
    assert policy.days_until(0.1, 7) == pytest.approx(7 * math.log(10))
    fsrs = RetentionPolicy(curve="fsrs")
    assert curve_value("fsrs", fsrs.days_until(0.5, 3), 3) == pytest.approx(0.5)


def test_bad_policies_are_refused() -> None:
    with pytest.raises(ConfigError, match="must fall"):
        RetentionPolicy(warm_below=0.3, cold_below=0.5)
    with pytest.raises(ConfigError, match="allowed"):
        RetentionPolicy(curve="power")
    with pytest.raises(ConfigError):
        RetentionPolicy(initial_stability_days=0)
