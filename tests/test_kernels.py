"""The fused side-GLU kernels against the fp32 torch reference: output and every gradient."""

from __future__ import annotations

import pytest
import torch
from helpers import assert_close

from memos.kernels import side_glu as sg

# Compiled kernels on CUDA; on the CPU, the Triton interpreter (conftest sets
# TRITON_INTERPRET=1 only when CUDA is absent).
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
pytestmark = [
    pytest.mark.skipif(sg.triton is None, reason="triton is not installed"),
    pytest.mark.skipif(
        DEVICE == "cpu" and not sg.INTERPRET, reason="no CUDA and TRITON_INTERPRET is not 1"
    ),
]

# T, d_in, r, d_out: odd sizes that no tile divides; on CUDA also model-sized ones.
SHAPES = [(9, 7, 5, 7), (33, 41, 16, 41), (64, 96, 24, 80), (130, 64, 70, 64)]
if DEVICE == "cuda":
    SHAPES += [(1000, 576, 100, 576), (4099, 2048, 256, 2048)]
# The CPU interpreter computes with numpy, which has no bfloat16: bf16 runs on CUDA only.
DTYPES = [
    (torch.float32, 1e-4, 1e-4),
    (torch.float16, 1e-2, 1e-2),
    pytest.param(
        torch.bfloat16,
        3e-2,
        3e-2,
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="bf16 needs CUDA"),
    ),
]


@pytest.fixture(autouse=True)
def _nan_allocations(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fresh allocations start as NaN, so an output the kernel never writes fails."""
    empty = torch.empty

    def nan_empty(*args, **kwargs):  # type: ignore[no-untyped-def]
        out = empty(*args, **kwargs)
        return out.fill_(float("nan")) if out.is_floating_point() else out

    monkeypatch.setattr(torch, "empty", nan_empty)


def _inputs(shape: tuple[int, int, int, int], dtype: torch.dtype, seed: int) -> list[torch.Tensor]:
    T, d, r, e = shape
    gen = torch.Generator().manual_seed(seed)
    tensors = [
        torch.randn(T, d, generator=gen),
        torch.randn(d, r, generator=gen) / d**0.5,
        torch.randn(d, r, generator=gen) / d**0.5,
        torch.randn(r, e, generator=gen) / r**0.5,
    ]
    return [t.to(DEVICE, dtype).requires_grad_() for t in tensors]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("dtype", "atol", "rtol"), DTYPES)
def test_forward_and_gradients_match_reference(
    shape: tuple[int, int, int, int], dtype: torch.dtype, atol: float, rtol: float
) -> None:
    tau = 0.37
    x, G, K, V = _inputs(shape, dtype, seed=sum(shape))
    y = sg.side_glu(x, G, K, V, tau, backend="triton")
    ref_inputs = [t.detach().float().requires_grad_() for t in (x, G, K, V)]
    y_ref = sg.side_glu_reference(*ref_inputs, tau)
    _check("y", y, y_ref, atol, rtol)
    dy = torch.randn_like(y_ref)
    y.backward(dy.to(dtype))
    y_ref.backward(dy)
    for name, got, want in zip("xGKV", (x, G, K, V), ref_inputs, strict=True):
        assert got.grad is not None and want.grad is not None
        _check(f"d{name}", got.grad, want.grad, atol * 4, rtol * 4)


def _check(name: str, got: torch.Tensor, want: torch.Tensor, atol: float, rtol: float) -> None:
    """Element-wise, with ``atol`` on the tensor's scale (sums over many rows grow), and in norm."""
    scale = max(1.0, want.abs().max().item())
    assert_close(name, got, want, atol * scale, rtol)
    error = ((got.float() - want).norm() / want.norm()).item()
    assert error < rtol, f"{name}: relative error {error:.2e} >= {rtol}"


def test_leading_dimensions_and_auto_dispatch() -> None:
    x = torch.randn(2, 5, 16)
    G, K, V = torch.randn(16, 8) / 4, torch.randn(16, 8) / 4, torch.randn(8, 16) / 3
    out = sg.side_glu(x, G, K, V, 0.5)
    assert out.shape == (2, 5, 16)
    assert_close("y", out, sg.side_glu_reference(x, G, K, V, 0.5), 1e-4, 1e-4)


def test_shape_errors_are_clear() -> None:
    x, G = torch.randn(3, 8), torch.randn(8, 4)
    with pytest.raises(ValueError, match="shape mismatch"):
        sg.side_glu(x, G, torch.randn(8, 5), torch.randn(4, 8), 1.0)
    with pytest.raises(ValueError, match="backend"):
        sg.side_glu(x, G, G, torch.randn(4, 8), 1.0, backend="cuda")
