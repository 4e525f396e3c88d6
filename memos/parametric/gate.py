"""The activation gate of a side memory: it speaks only where its units fire hard.

A side memory adds its output at every token. However small it is on text
unrelated to the memories, a greedy reply that the base model gives by a hair
flips on it: an adapter trained 2 steps, which has learned nothing, already
lost 4 of 80 ordinary answers, and no soft penalty on the memory's output on
ordinary text brought the loss below 5 of 80 (see *Locality, measured* in
the README). So the memory is gated per token (after WISE's activation routing):

    h = FFN(a) + [||m|| > theta] * tau * V^T m,   m = SiLU(G^T a) * (K^T a)

The threshold ``theta`` is calibrated on ordinary text: the largest activation
norm ``||m||`` the memory reaches on the trainer's locality text. Where a
token stays below it the memory is an exact no-op, so text like the
calibration text gets the base model's replies bit for bit.

Training keeps the gate in the loop (:class:`GateTraining`): the forward pass
uses the hard gate, the backward pass a sigmoid's slope around ``theta``
(straight-through), so the memory learns to store its facts where it fires
above the threshold; a separation term pushes the norms on ordinary text
below ``(1 - margin) * theta``, and ``theta`` follows the largest norm seen on
the locality text as training goes.

Measured at 30 invented facts, 60 steps, rank 128 (the benchmark's held-out
wordings and locality questions, which the calibration text does not hold):
ungated, 27 % question recall and 91.25 % of ordinary answers kept; the
trained adapter gated after training at that threshold, 1 % and 100 %; gated
in the loop (this module), 21 % and 100 %. The README has the 100-fact run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
from torch.nn import functional as F

if TYPE_CHECKING:
    from memos.parametric.side_memory import SideGLU

# Width of the straight-through slope, as a share of the threshold.
SOFTNESS = 0.1
# Final thresholds sit this far (relative) above the largest calibration norm: a
# forward of one sequence rounds differently from the batched calibration pass.
# Half-precision models get more (see :func:`slack_for`).
SLACK = 1e-3
log = logging.getLogger(__name__)
Key = tuple[int, int]  # a locality example: (pool, index)
Recorded = list[list[torch.Tensor]]  # per memory, the norms of each forward


def activation_norm(a: torch.Tensor, G: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """``||SiLU(a @ G) * (a @ K)||`` per token, in float32 whatever the model's dtype
    (a threshold compared in bfloat16 would round by up to 0.4 %): ``[..., d] -> [...]``."""
    a, G, K = a.float(), G.float(), K.float()
    return (F.silu(a @ G) * (a @ K)).norm(dim=-1)


def slack_for(dtype: torch.dtype) -> float:
    """How far above the calibration norms a final threshold sits for a model computing
    in ``dtype``: :data:`SLACK`, or two of its rounding steps where that is more."""
    return max(SLACK, 2 * torch.finfo(dtype).eps)


def float32_ceil(value: float) -> float:
    """The smallest float32 at or above ``value``: a threshold survives being saved as
    float32 (the adapter file) unchanged, and never below what it was calibrated to."""
    stored = torch.tensor(value, dtype=torch.float32)
    if stored.item() < value:
        stored = torch.nextafter(stored, torch.tensor(float("inf")))
    return stored.item()


def gate(norm: torch.Tensor, threshold: float, softness: float = SOFTNESS) -> torch.Tensor:
    """``1[norm > threshold]`` per token ``[...]``, in ``norm``'s dtype.

    Where gradients are on, the backward pass takes the slope of
    ``sigmoid((norm - threshold) / (softness * threshold))`` (straight-through),
    so training can move a token's norm across the threshold.
    """
    hard = (norm > threshold).to(norm.dtype)
    if threshold <= 0 or not (torch.is_grad_enabled() and norm.requires_grad):
        return hard
    soft = torch.sigmoid((norm - threshold) / (softness * threshold))
    return hard + (soft - soft.detach())  # forward: exactly hard


@contextmanager
def recording(memories: Sequence[SideGLU]) -> Iterator[Recorded]:
    """Collect each memory's activation norms ``[B, T]`` of the forwards run inside."""
    norms: Recorded = [[] for _ in memories]
    for memory, sink in zip(memories, norms, strict=True):
        memory.recorder = sink
    try:
        yield norms
    finally:
        for memory in memories:
            memory.recorder = None


class GateTraining:
    """Thresholds that follow ordinary text while the memories train, and the
    separation term that keeps ordinary text below them.

    Each memory keeps a table of the largest norm it reached on every
    locality example (filled by a full pass before training, then refreshed
    by each batch the trainer's locality term runs); its threshold is the
    largest entry. The working threshold rises from 0 to it over the first
    ``ramp_steps`` steps (0: from the first step), so the memory first learns
    where to write at all. After training, :meth:`finish` takes a fresh full
    pass and keeps the larger of the two thresholds, so the memory is silent
    on all of the locality text.
    """

    def __init__(
        self, memories: Sequence[SideGLU], margin: float, ramp_steps: int, slack: float = SLACK
    ) -> None:
        self.memories = list(memories)
        self.margin = margin
        self.ramp_steps = ramp_steps
        self.slack = slack
        self.tables: list[dict[Key, float]] = [{} for _ in self.memories]
        self.thresholds = [0.0 for _ in self.memories]
        self.step(0)

    def observe(self, keys: Sequence[Key], lengths: Sequence[int], norms: Recorded) -> None:
        """Record the largest norm of each example of a batch (``norms`` from
        :func:`recording`, one forward over ``[B, T]`` right-padded to ``lengths``)."""
        for table, recorded in zip(self.tables, norms, strict=True):
            valid = _valid(lengths, recorded[-1].device)
            rows = recorded[-1].detach().masked_fill(~valid, 0.0).amax(dim=1).tolist()
            table.update(zip(keys, rows, strict=True))
        self.thresholds = [max(table.values(), default=0.0) for table in self.tables]

    def separation(
        self, keys: Sequence[Key], lengths: Sequence[int], norms: Recorded
    ) -> torch.Tensor:
        """Observe a locality batch and return the sum over memories of
        ``mean(relu(norm / theta - (1 - margin))^2)`` over its tokens."""
        self.observe(keys, lengths, norms)
        self._apply()
        terms = [
            F.relu(norm[_valid(lengths, norm.device)] / theta - (1.0 - self.margin)).pow(2).mean()
            for norm, theta in zip((r[-1] for r in norms), self.thresholds, strict=True)
            if theta > 0
        ]
        return torch.stack(terms).sum() if terms else torch.zeros(())

    def step(self, done: int) -> None:
        """Set the working thresholds after ``done`` optimizer steps."""
        self._ramp = min(1.0, done / self.ramp_steps) if self.ramp_steps > 0 else 1.0
        self._apply()

    def finish(self, full_pass: Callable[[], None], passes: int = 3) -> list[float]:
        """Set the final thresholds: the larger of the trained ones and those of a
        fresh ``full_pass`` over the locality text (which calls :meth:`observe`),
        with the gates at work, plus the slack, rounded up to float32. A raised
        threshold changes what the layers above it see, so the pass is repeated
        (at most ``passes`` times) until no threshold rises; a warning says when
        they still rose at the last pass."""
        self.step(self.ramp_steps)
        self.thresholds = [float32_ceil(theta) for theta in self.thresholds]
        for _ in range(passes):
            before = list(self.thresholds)
            full_pass()
            fresh = [theta * (1 + self.slack) for theta in self.thresholds]
            self.thresholds = [float32_ceil(max(a, b)) for a, b in zip(before, fresh, strict=True)]
            self._apply()
            if self.thresholds == before:
                break
        else:
            log.warning(
                "gate thresholds still rose after %d calibration passes: the memories may "
                "speak on some of the locality text",
                passes,
            )
        return list(self.thresholds)

    def _apply(self) -> None:
        for memory, theta in zip(self.memories, self.thresholds, strict=True):
            memory.threshold = self._ramp * theta


def _valid(lengths: Sequence[int], device: torch.device) -> torch.Tensor:
    """``[B, T]``: which positions of a right-padded batch hold tokens."""
    width = torch.arange(max(lengths), device=device)
    return width[None, :] < torch.tensor(lengths, device=device)[:, None]
