"""Every step kind survives its job row: payload to JSON and back is the same step."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from memos.parametric.config import TrainConfig
from memos.records import StateChange
from memos.scheduler.steps import (
    STEP_TYPES,
    BuildSnapshot,
    Consolidate,
    DecayStep,
    EvictSnapshot,
    PromoteSnapshot,
    RebuildAdapter,
    RetireAdapter,
    Step,
    TrainAdapter,
    step_from_job,
)

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
STEPS: list[Step] = [
    DecayStep("c", "r", NOW, (StateChange("i1", "c", "active", "warm", 0.5),)),
    EvictSnapshot("c", "r", "a1"),
    RetireAdapter("c", "r", "a1"),
    RebuildAdapter("c", "r", "a1", ("i1", "i2"), True),
    PromoteSnapshot("c", "r", ("i1",), ("i1", "i2"), 256, "float16"),
    Consolidate("c", "r", ("i1",)),
    BuildSnapshot("c", "requested", ("i1", "i2"), 128, "float32"),
    TrainAdapter("c", "requested", ("i1",), TrainConfig(rank=2, steps=3, layers=(10,), lr=0.1)),
    TrainAdapter("c", "requested", ("i1",), TrainConfig()),
]


def test_every_kind_has_a_case() -> None:
    assert {type(s) for s in STEPS} == set(STEP_TYPES.values())


@pytest.mark.parametrize("step", STEPS, ids=lambda s: s.kind)
def test_a_step_round_trips_through_its_job_row(step: Step) -> None:
    payload = json.loads(json.dumps(step.payload()))
    assert step_from_job(step.kind, step.cube, step.rule, payload) == step
