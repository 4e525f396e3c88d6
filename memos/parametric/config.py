"""Consolidation settings (a light module: no torch), shared by the SDK, the
scheduler's policy and the trainer."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from memos.errors import InvalidInputError
from memos.fields import TRAIN_OPTIONS
from memos.validation import check_count, check_number

BACKENDS = ("auto", "triton", "reference")


@dataclass(frozen=True)
class TrainConfig:
    """Consolidation settings.

    Attributes:
        rank: units per memory layer.
        layers: decoder layers to add memories to (``None``: a third, half
            and two thirds of the way up).
        steps: most optimizer steps.
        batch_size: training examples per step (shuffled each epoch).
        lr: AdamW learning rate of the value vectors at the start; it decays
            to 0 on a cosine over ``steps``.
        key_lr: the same for the gate and key vectors, which start as copies
            of the host's own units and are clipped to the host's row norm.
        locality_weight: weight of the KL term (general text and chat questions).
        locality_batch: general-text lines, and as many chat questions, in the
            KL term per step.
        gate: gate each memory per token on its activation norm, with the
            threshold calibrated on the locality text, so that it is an exact
            no-op where it does not fire (see :mod:`memos.parametric.gate`);
            a gated adapter merges into the weights only with its gate dropped.
            On by default: at 100 facts on the 300-step budget, gated memories
            answered 99.2 % of held-out questions and kept every ordinary
            answer, where ungated ones kept 93.8 % (see the README's *Gate*).
        gate_weight: weight of the term that keeps the locality text's
            activation norms below the threshold.
        gate_margin: how far below: norms above ``(1 - gate_margin) * theta``
            are pushed down.
        gate_ramp: share of ``steps`` over which the threshold rises from 0 to
            its calibrated value (the memory first learns where to write).
        target_loss: stop once an epoch's mean task loss falls below this.
        patience: stop after this many epochs without a 1% improvement of the
            best epoch loss.
        seed: seeds initialization order and batching.
        backend: side-GLU kernel backend (``auto``, ``triton``, ``reference``).
    """

    rank: int = 32
    layers: tuple[int, ...] | None = None
    steps: int = 300
    batch_size: int = 32
    lr: float = 5e-2
    key_lr: float = 5e-3
    locality_weight: float = 6.0
    locality_batch: int = 8
    gate: bool = True
    gate_weight: float = 1.0
    gate_margin: float = 0.2
    gate_ramp: float = 0.25
    target_loss: float = 0.05
    patience: int = 3
    seed: int = 0
    backend: str = "auto"

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> TrainConfig:
        """A config from :class:`memos.fields.TrainOptions` (unknown names refused)."""
        unknown = sorted(str(k) for k in options if k not in TRAIN_OPTIONS)
        if unknown:
            raise InvalidInputError(
                f"unknown training option(s) {unknown}; allowed: {', '.join(TRAIN_OPTIONS)}"
            )
        values = dict(options)
        layers = values.get("layers")
        if layers is not None:
            if isinstance(layers, str | bytes) or not hasattr(layers, "__iter__"):
                raise InvalidInputError("layers must be a list of layer numbers")
            values["layers"] = tuple(layers)
        return cls(**values)

    def __post_init__(self) -> None:
        for name, high in (
            ("rank", 4096),
            ("steps", 100_000),
            ("batch_size", 4096),
            ("locality_batch", 4096),
            ("patience", 10_000),
        ):
            check_count(getattr(self, name), name, 1, high)
        check_count(self.seed, "seed", 0, 2**63 - 1)
        if self.layers is not None:
            if not 1 <= len(self.layers) <= 256:
                raise InvalidInputError("layers must list 1 to 256 layer numbers")
            for layer in self.layers:
                check_count(layer, "layer", 0, 1023)
        rates = (self.lr, self.key_lr, self.locality_weight)
        if not all(_number(r) for r in rates) or min(self.lr, self.key_lr) <= 0:
            raise InvalidInputError(
                "lr and key_lr must be > 0 and locality_weight >= 0, "
                f"got lr={self.lr!r}, key_lr={self.key_lr!r}"
            )
        check_number(self.lr, "lr", 0, 10)
        check_number(self.key_lr, "key_lr", 0, 10)
        if self.locality_weight < 0:
            raise InvalidInputError("lr and key_lr must be > 0 and locality_weight >= 0")
        check_number(self.locality_weight, "locality_weight", 0, 100)
        check_number(self.target_loss, "target_loss", 0)
        if not isinstance(self.gate, bool):
            raise InvalidInputError(f"gate={self.gate!r}; allowed: true or false")
        if self.backend not in BACKENDS:
            raise InvalidInputError(f"backend={self.backend!r}; allowed: {', '.join(BACKENDS)}")
        for name, allowed, ok in (
            ("gate_weight", ">= 0", _number(self.gate_weight) and self.gate_weight >= 0),
            (
                "gate_margin",
                "0 <= gate_margin < 1",
                _number(self.gate_margin) and 0 <= self.gate_margin < 1,
            ),
            (
                "gate_ramp",
                "0 <= gate_ramp <= 1",
                _number(self.gate_ramp) and 0 <= self.gate_ramp <= 1,
            ),
        ):
            if not ok:
                raise InvalidInputError(f"{name}={getattr(self, name)}; allowed: {allowed}")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
