"""Test helpers importable by the tests and by the subprocesses they start."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from memos.client import Memos
from memos.clock import ManualClock
from memos.config import MemosConfig
from memos.plaintext.embedder import HashingEmbedder

_WORD = re.compile(r"\w+")


class BrokenEmbedder(HashingEmbedder):
    """Returns NaN or the wrong dimension, as a faulty custom model might."""

    def __init__(self, fault: str) -> None:
        super().__init__()
        self.fault = fault

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = super().encode(texts)
        if self.fault == "nan":
            out[:, 0] = np.nan
            return out
        if self.fault == "dim":
            return out[:, : self.dim - 1]
        raise RuntimeError("model exploded")


def open_memos(home: Path, url: str | None = None, lm: Any = None, **config: object) -> Memos:
    """A Memos on ``home`` (and ``url``) with the hashing embedder and a manual clock
    (and a loaded language model, when given)."""
    cfg = MemosConfig(home=home, database_url=url, **config)  # type: ignore[arg-type]
    return Memos(cfg, embedder=HashingEmbedder(), clock=ManualClock(), lm=lm)


def assert_close(name: str, got: Any, want: Any, atol: float, rtol: float) -> None:
    """Compare tensors; on failure report the max abs error and where it is."""
    import torch

    got, want = got.float(), want.float()
    assert got.shape == want.shape, f"{name}: shape {tuple(got.shape)} != {tuple(want.shape)}"
    assert torch.isfinite(got).all(), f"{name}: non-finite values (unwritten output?)"
    diff = (got - want).abs()
    bad = diff > atol + rtol * want.abs()
    if bad.any():
        where = tuple(int(i) for i in torch.nonzero(bad)[0])
        raise AssertionError(
            f"{name}: max abs error {diff.max().item():.3e}; first failure at {where}: "
            f"{got[where].item():.6g} vs {want[where].item():.6g} (atol={atol}, rtol={rtol})"
        )
