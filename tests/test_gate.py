"""The side memory's activation gate: hard forward, straight-through slope, calibration."""

from __future__ import annotations

import pytest
import torch

from memos import InvalidInputError
from memos.parametric import gate
from memos.parametric import side_memory as sm
from memos.parametric.config import TrainConfig


def _memory(seed: int = 0, d: int = 16, rank: int = 4) -> sm.SideGLU:
    generator = torch.Generator().manual_seed(seed)
    memory = sm.SideGLU(d, rank, tau=0.5, backend="reference")
    with torch.no_grad():
        for p in (memory.G, memory.K, memory.V):
            p.copy_(torch.randn(p.shape, generator=generator))
    return memory


def _inputs(seed: int = 1, shape: tuple[int, ...] = (3, 9, 16)) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def test_gate_is_hard_forward_and_a_sigmoid_slope_backward() -> None:
    norm = torch.tensor([0.5, 0.99, 1.0, 1.01, 3.0], requires_grad=True)
    opened = gate.gate(norm, 1.0)
    assert opened.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]  # strictly above the threshold
    opened.sum().backward()
    soft = torch.sigmoid((norm.detach() - 1.0) / gate.SOFTNESS)
    assert norm.grad is not None
    torch.testing.assert_close(norm.grad, soft * (1 - soft) / gate.SOFTNESS)
    with torch.no_grad():
        assert gate.gate(norm, 1.0).tolist() == opened.tolist()
    assert gate.gate(norm.detach(), 0.0).tolist() == [1.0] * 5  # threshold 0: open


def test_a_gated_memory_is_silent_below_its_threshold_and_unchanged_above() -> None:
    memory, a = _memory(), _inputs()
    ungated = memory(a)
    norm = gate.activation_norm(a, memory.G, memory.K)  # [3, 9]
    memory.threshold = float(norm.detach().median())
    gated = memory(a)
    above = norm > memory.threshold
    assert 0 < int(above.sum()) < above.numel()
    assert torch.equal(gated[~above], torch.zeros_like(gated[~above]))
    assert torch.equal(gated[above], ungated[above])


def test_recording_collects_each_forwards_norms_and_stops() -> None:
    memory, a = _memory(), _inputs()
    with gate.recording([memory]) as norms:
        memory(a)
        memory(a[:1])
    memory(a)
    assert [n.shape for n in norms[0]] == [(3, 9), (1, 9)]
    torch.testing.assert_close(norms[0][0], gate.activation_norm(a, memory.G, memory.K))
    assert memory.recorder is None


def test_thresholds_follow_the_largest_norm_of_each_example_and_ramp_up() -> None:
    memories = [_memory(0), _memory(1)]
    training = gate.GateTraining(memories, margin=0.2, ramp_steps=4)
    a = _inputs()
    with gate.recording(memories) as norms:
        for memory in memories:
            memory(a)
    lengths = [9, 5, 2]  # right padding beyond these is not text
    training.observe([(0, 0), (0, 1), (0, 2)], lengths, norms)
    for memory, recorded, theta in zip(memories, norms, training.thresholds, strict=True):
        tops = [float(recorded[0][row, :n].detach().max()) for row, n in enumerate(lengths)]
        assert theta == pytest.approx(max(tops))
        assert memory.threshold == 0.0  # ramp at step 0: the gate is open
    training.step(2)
    assert memories[0].threshold == pytest.approx(training.thresholds[0] / 2)
    training.step(9)
    assert memories[1].threshold == pytest.approx(training.thresholds[1])


def test_separation_pushes_only_norms_above_the_margin() -> None:
    memory = _memory()
    training = gate.GateTraining([memory], margin=0.2, ramp_steps=1)
    a = _inputs().requires_grad_(False)
    with gate.recording([memory]) as norms:
        memory(a)
    keys, lengths = [(1, 0), (1, 1), (1, 2)], [9, 9, 9]
    loss = training.separation(keys, lengths, norms)
    theta = training.thresholds[0]
    expected = torch.relu(norms[0][0].reshape(-1) / theta - 0.8).pow(2).mean()
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert memory.G.grad is not None and memory.G.grad.abs().sum() > 0
    quiet = gate.GateTraining([memory], margin=0.2, ramp_steps=1)
    quiet.tables[0][(9, 9)] = 100 * theta  # a far larger norm elsewhere: nothing is near it
    with gate.recording([memory]) as norms:
        memory(a)
    assert quiet.separation(keys, lengths, norms).item() == 0.0


def test_finish_keeps_the_larger_threshold_of_training_and_a_fresh_pass() -> None:
    memory = _memory()
    training = gate.GateTraining([memory], margin=0.2, ramp_steps=10)
    training.tables[0][(0, 0)] = 7.0
    training.thresholds = [7.0]

    def full_pass(value: float) -> None:
        training.observe([(0, 0)], [1], [[torch.tensor([[value]])]])

    assert training.finish(lambda: full_pass(5.0)) == [7.0]
    assert memory.threshold == 7.0  # the ramp is over
    # a little above the largest norm of the fresh pass, as float32 stores it
    raised = gate.float32_ceil(8.0 * (1 + gate.SLACK))
    assert training.finish(lambda: full_pass(8.0)) == [raised]
    assert memory.threshold == raised


def test_bad_gate_settings() -> None:
    for bad in ({"gate_weight": -1.0}, {"gate_margin": 1.0}, {"gate_ramp": 1.5}):
        (name,) = bad
        with pytest.raises(InvalidInputError, match=f"{name}="):
            TrainConfig(**bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="gate='false'"):
        TrainConfig(gate="false")  # type: ignore[arg-type]


def test_recording_stops_when_the_forward_fails() -> None:
    memory = _memory()
    with pytest.raises(ValueError, match="shape"), gate.recording([memory]):
        memory(torch.zeros(2, 3))  # d = 16: the wrong width
    assert memory.recorder is None


def test_a_threshold_survives_float32_and_half_precision_gets_more_slack() -> None:
    for value in (1.0, 1 / 3, 38.812345678901, 1e-30):
        stored = gate.float32_ceil(value)
        assert stored >= value
        assert torch.tensor(stored, dtype=torch.float32).item() == stored
    assert gate.float32_ceil(1 / 3) - 1 / 3 < 1e-7
    assert gate.slack_for(torch.float32) == gate.SLACK
    assert gate.slack_for(torch.bfloat16) > 2 * 2**-8  # two bfloat16 rounding steps


def test_a_ramp_of_zero_steps_gates_from_the_first_step() -> None:
    memory = _memory()
    training = gate.GateTraining([memory], margin=0.2, ramp_steps=0)
    training.observe([(0, 0)], [1], [[torch.tensor([[3.0]])]])
    training.step(0)
    assert memory.threshold == 3.0
