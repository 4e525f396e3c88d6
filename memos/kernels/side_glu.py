"""Fused side-GLU memory: ``y = tau * (SiLU(x @ G) * (x @ K)) @ V``.

Shapes: ``x [T, d_in]``, ``G, K [d_in, r]``, ``V [r, d_out]``, ``y [T, d_out]``.

Forward: one Triton kernel computes both shrink products ``x @ G`` and
``x @ K`` in a single pass over ``x`` and applies SiLU-times-multiply in its
epilogue, writing only ``m [T, r]``; the expand ``tau * m @ V`` is a dense
GEMM. Backward recomputes the activation instead of storing it: one kernel
makes a pass over ``x`` and ``dy`` accumulating ``x @ G``, ``x @ K`` and
``dy @ V^T``, and writes ``dG_pre``, ``dK_pre`` and ``m`` from its epilogue;
the weight and input gradients are one dense GEMM each over ``[dG_pre | dK_pre]``.

Dispatch (``backend="auto"``): Triton on CUDA; the Triton interpreter on CPU
when ``TRITON_INTERPRET=1`` was set before this module was imported; else the
fp32 torch reference, which is also what the kernels are tested against.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch

try:  # triton is optional on CPU-only installs
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised only without triton
    triton = None
    tl = None

BACKENDS = ("auto", "triton", "reference")
INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"


def side_glu_reference(
    x: torch.Tensor, G: torch.Tensor, K: torch.Tensor, V: torch.Tensor, tau: float
) -> torch.Tensor:
    """Plain fp32 torch: ``tau * (silu(x @ G) * (x @ K)) @ V`` in ``x``'s dtype."""
    xf = x.float()
    m = torch.nn.functional.silu(xf @ G.float()) * (xf @ K.float())  # [T, r]
    return (tau * (m @ V.float())).to(x.dtype)  # [T, d_out]


if triton is not None:

    @triton.jit
    def _shrink_fwd_kernel(
        x_ptr,
        g_ptr,
        k_ptr,
        m_ptr,
        T,
        D,
        R,
        stride_xt,
        stride_xd,
        stride_gd,
        stride_gr,
        stride_kd,
        stride_kr,
        stride_mt,
        stride_mr,
        BLOCK_T: tl.constexpr,
        BLOCK_D: tl.constexpr,
        BLOCK_R: tl.constexpr,
        PRECISION: tl.constexpr,
    ):
        pid_t, pid_r = tl.program_id(0), tl.program_id(1)
        rows = pid_t * BLOCK_T + tl.arange(0, BLOCK_T)  # [BT]
        cols = pid_r * BLOCK_R + tl.arange(0, BLOCK_R)  # [BR]
        acc_g = tl.zeros((BLOCK_T, BLOCK_R), dtype=tl.float32)
        acc_k = tl.zeros((BLOCK_T, BLOCK_R), dtype=tl.float32)
        for start in range(0, D, BLOCK_D):
            dims = start + tl.arange(0, BLOCK_D)  # [BD]
            x = tl.load(
                x_ptr + rows[:, None] * stride_xt + dims[None, :] * stride_xd,
                mask=(rows[:, None] < T) & (dims[None, :] < D),
                other=0.0,
            )  # [BT, BD]
            wmask = (dims[:, None] < D) & (cols[None, :] < R)
            g = tl.load(
                g_ptr + dims[:, None] * stride_gd + cols[None, :] * stride_gr, mask=wmask, other=0.0
            )
            k = tl.load(
                k_ptr + dims[:, None] * stride_kd + cols[None, :] * stride_kr, mask=wmask, other=0.0
            )
            acc_g = tl.dot(x, g, acc_g, input_precision=PRECISION)  # [BT, BR]
            acc_k = tl.dot(x, k, acc_k, input_precision=PRECISION)
        m = acc_g * tl.sigmoid(acc_g) * acc_k
        tl.store(
            m_ptr + rows[:, None] * stride_mt + cols[None, :] * stride_mr,
            m.to(m_ptr.dtype.element_ty),
            mask=(rows[:, None] < T) & (cols[None, :] < R),
        )

    @triton.jit
    def _shrink_bwd_kernel(
        x_ptr,
        dy_ptr,
        g_ptr,
        k_ptr,
        v_ptr,
        dgk_ptr,
        m_ptr,
        tau,
        T,
        D,
        E,
        R,
        stride_xt,
        stride_xd,
        stride_yt,
        stride_ye,
        stride_gd,
        stride_gr,
        stride_kd,
        stride_kr,
        stride_vr,
        stride_ve,
        stride_ot,
        stride_or,
        stride_mt,
        stride_mr,
        BLOCK_T: tl.constexpr,
        BLOCK_D: tl.constexpr,
        BLOCK_R: tl.constexpr,
        PRECISION: tl.constexpr,
    ):
        pid_t, pid_r = tl.program_id(0), tl.program_id(1)
        rows = pid_t * BLOCK_T + tl.arange(0, BLOCK_T)  # [BT]
        cols = pid_r * BLOCK_R + tl.arange(0, BLOCK_R)  # [BR]
        acc_g = tl.zeros((BLOCK_T, BLOCK_R), dtype=tl.float32)
        acc_k = tl.zeros((BLOCK_T, BLOCK_R), dtype=tl.float32)
        acc_dm = tl.zeros((BLOCK_T, BLOCK_R), dtype=tl.float32)
        for start in range(0, D, BLOCK_D):  # recompute x @ G and x @ K
            dims = start + tl.arange(0, BLOCK_D)
            x = tl.load(
                x_ptr + rows[:, None] * stride_xt + dims[None, :] * stride_xd,
                mask=(rows[:, None] < T) & (dims[None, :] < D),
                other=0.0,
            )
            wmask = (dims[:, None] < D) & (cols[None, :] < R)
            g = tl.load(
                g_ptr + dims[:, None] * stride_gd + cols[None, :] * stride_gr, mask=wmask, other=0.0
            )
            k = tl.load(
                k_ptr + dims[:, None] * stride_kd + cols[None, :] * stride_kr, mask=wmask, other=0.0
            )
            acc_g = tl.dot(x, g, acc_g, input_precision=PRECISION)
            acc_k = tl.dot(x, k, acc_k, input_precision=PRECISION)
        for start in range(0, E, BLOCK_D):  # dm = dy @ V^T
            dims = start + tl.arange(0, BLOCK_D)
            dy = tl.load(
                dy_ptr + rows[:, None] * stride_yt + dims[None, :] * stride_ye,
                mask=(rows[:, None] < T) & (dims[None, :] < E),
                other=0.0,
            )  # [BT, BE]
            vt = tl.load(
                v_ptr + cols[None, :] * stride_vr + dims[:, None] * stride_ve,
                mask=(dims[:, None] < E) & (cols[None, :] < R),
                other=0.0,
            )  # [BE, BR] = V[cols, dims]^T
            acc_dm = tl.dot(dy, vt, acc_dm, input_precision=PRECISION)
        acc_dm = acc_dm * tau
        sig = tl.sigmoid(acc_g)
        silu = acc_g * sig
        dsilu = sig * (1.0 + acc_g * (1.0 - sig))
        out = rows[:, None] * stride_ot + cols[None, :] * stride_or
        omask = (rows[:, None] < T) & (cols[None, :] < R)
        dtype = dgk_ptr.dtype.element_ty
        tl.store(dgk_ptr + out, (acc_dm * acc_k * dsilu).to(dtype), mask=omask)  # dG_pre
        tl.store(dgk_ptr + out + R * stride_or, (acc_dm * silu).to(dtype), mask=omask)  # dK_pre
        m_out = rows[:, None] * stride_mt + cols[None, :] * stride_mr
        tl.store(m_ptr + m_out, (silu * acc_k).to(dtype), mask=omask)

    def _tile(t: int, d: int, r: int, warps: int, stages: int) -> Any:
        return triton.Config(
            {"BLOCK_T": t, "BLOCK_D": d, "BLOCK_R": r}, num_warps=warps, num_stages=stages
        )

    # On CUDA the tile shape is tuned once per (d, r) and dtype; the backward
    # holds three accumulators, so its tiles stay smaller. The interpreter
    # (numpy on the CPU) gets one fixed tile from _blocks instead.
    _FWD_TILES = [
        _tile(64, 32, 64, 4, 3),
        _tile(128, 64, 64, 4, 3),
        _tile(128, 64, 128, 8, 3),
        _tile(64, 64, 128, 4, 4),
        _tile(128, 32, 32, 4, 4),
        _tile(64, 64, 32, 4, 4),
        _tile(128, 64, 128, 8, 4),
        _tile(256, 64, 64, 8, 3),
    ]
    _BWD_TILES = [
        _tile(64, 32, 64, 4, 3),
        _tile(128, 32, 64, 8, 3),
        _tile(64, 64, 64, 4, 3),
        _tile(64, 32, 32, 4, 4),
        _tile(128, 64, 32, 8, 3),
        _tile(128, 64, 64, 8, 3),
        _tile(64, 64, 128, 8, 3),
    ]
    if not INTERPRET:
        _shrink_fwd_kernel = triton.autotune(_FWD_TILES, key=["D", "R", "PRECISION"])(
            _shrink_fwd_kernel
        )
        _shrink_bwd_kernel = triton.autotune(_BWD_TILES, key=["D", "E", "R", "PRECISION"])(
            _shrink_bwd_kernel
        )


def _blocks(T: int, R: int) -> dict[str, int]:
    """The fixed tile of the interpreter; on CUDA the autotuner chooses."""
    if not INTERPRET:
        return {}
    block_t = 64 if T >= 64 else 16
    block_r = 64 if R >= 64 else (32 if R > 16 else 16)
    return {"BLOCK_T": block_t, "BLOCK_D": 32, "BLOCK_R": block_r}


def _grid(T: int, R: int) -> Callable[[dict[str, Any]], tuple[int, int]]:
    return lambda meta: (triton.cdiv(T, meta["BLOCK_T"]), triton.cdiv(R, meta["BLOCK_R"]))


def _precision(x: torch.Tensor) -> str:
    """fp32 inputs keep full precision (tf32 would drift ~1e-3 from the reference)."""
    return "ieee" if x.dtype == torch.float32 else "tf32"


def shrink_forward(x: torch.Tensor, G: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """``m = silu(x @ G) * (x @ K)`` ``[T, r]`` by the fused Triton kernel."""
    T, D = x.shape
    R = G.shape[1]
    m = torch.empty((T, R), device=x.device, dtype=x.dtype)
    _shrink_fwd_kernel[_grid(T, R)](
        x,
        G,
        K,
        m,
        T,
        D,
        R,
        x.stride(0),
        x.stride(1),
        G.stride(0),
        G.stride(1),
        K.stride(0),
        K.stride(1),
        m.stride(0),
        m.stride(1),
        PRECISION=_precision(x),
        **_blocks(T, R),
    )
    return m


def shrink_backward(
    x: torch.Tensor, dy: torch.Tensor, G: torch.Tensor, K: torch.Tensor, V: torch.Tensor, tau: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``[dG_pre | dK_pre]`` ``[T, 2r]`` and the recomputed ``m`` ``[T, r]``.

    The two pre-activation gradients share one buffer, so the caller finishes
    the input and the weight gradients with one GEMM each.
    """
    T, D = x.shape
    E = dy.shape[1]
    R = G.shape[1]
    both = torch.empty((T, 2 * R), device=x.device, dtype=x.dtype)  # [dG_pre | dK_pre]
    m = torch.empty((T, R), device=x.device, dtype=x.dtype)
    _shrink_bwd_kernel[_grid(T, R)](
        x,
        dy,
        G,
        K,
        V,
        both,
        m,
        float(tau),
        T,
        D,
        E,
        R,
        x.stride(0),
        x.stride(1),
        dy.stride(0),
        dy.stride(1),
        G.stride(0),
        G.stride(1),
        K.stride(0),
        K.stride(1),
        V.stride(0),
        V.stride(1),
        both.stride(0),
        both.stride(1),
        m.stride(0),
        m.stride(1),
        PRECISION=_precision(x),
        **_blocks(T, R),
    )
    return both, m


class SideGLUFunction(torch.autograd.Function):
    """Autograd wrapper of the fused kernels (inputs 2-D and contiguous)."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, G: torch.Tensor, K: torch.Tensor, V: torch.Tensor, tau: float
    ) -> torch.Tensor:
        m = shrink_forward(x, G, K)  # [T, r]
        ctx.save_for_backward(x, G, K, V)
        ctx.tau = tau
        return (m @ V) * tau  # [T, d_out]

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, G, K, V = ctx.saved_tensors
        dy = dy.contiguous()
        both, m = shrink_backward(x, dy, G, K, V, ctx.tau)  # [T, 2r], [T, r]
        dx = both @ torch.cat([G, K], dim=1).t()  # [T, d_in]: one GEMM, not two and a sum
        dw = x.t() @ both  # [d_in, 2r]
        R = G.shape[1]
        return dx, dw[:, :R], dw[:, R:], (m.t() @ dy) * ctx.tau, None


def triton_usable(device: torch.device) -> bool:
    """Whether the Triton path can run for tensors on ``device``."""
    return triton is not None and (device.type == "cuda" or INTERPRET)


def side_glu(
    x: torch.Tensor,
    G: torch.Tensor,
    K: torch.Tensor,
    V: torch.Tensor,
    tau: float,
    backend: str = "auto",
) -> torch.Tensor:
    """Side-GLU memory output for ``x [..., d_in]``: ``[..., d_out]``.

    Args:
        G, K: ``[d_in, r]`` gate and key projections.
        V: ``[r, d_out]`` value projection.
        tau: output scale.
        backend: ``"auto"``, ``"triton"`` or ``"reference"``.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r}; allowed: {', '.join(BACKENDS)}")
    d_in, r = G.shape
    if K.shape != (d_in, r) or V.shape[0] != r or x.shape[-1] != d_in:
        raise ValueError(
            f"shape mismatch: x {tuple(x.shape)}, G {tuple(G.shape)}, K {tuple(K.shape)}, "
            f"V {tuple(V.shape)}; need x [..., d], G and K [d, r], V [r, d_out]"
        )
    use_triton = backend == "triton" or (backend == "auto" and triton_usable(x.device))
    if use_triton and triton is None:
        raise RuntimeError("backend='triton' needs the triton package")
    if not use_triton:
        return side_glu_reference(x, G, K, V, tau)
    flat = x.reshape(-1, d_in).contiguous()
    out = SideGLUFunction.apply(flat, G.contiguous(), K.contiguous(), V.contiguous(), float(tau))
    return out.reshape(*x.shape[:-1], V.shape[1])
