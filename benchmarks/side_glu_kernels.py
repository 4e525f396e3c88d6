"""Side-GLU kernel benchmark: fused Triton forward+backward vs the eager torch reference.

On a CUDA device: tokens 4k-16k, d 576-4096, r 16-256, bf16; median times (with
``triton.testing.do_bench``) of forward+backward for the fused kernels, the
eager reference (fp32 math, what the kernels are tested against), the same
formula in bf16 ("native", as a user would write it), ``torch.compile`` of
each, and the ratios (target: fused >= 1.5x eager); also the fused path's
relative error against the fp32 reference for the output and each gradient,
and a per-stage breakdown (each kernel against torch doing the same work).
On a CPU-only machine the Triton path does not run (the interpreter is for
correctness, not speed): the reference path is timed at the same shapes in
fp32 and the device is recorded as CPU.

Usage: ``python benchmarks/side_glu_kernels.py [--quick]``; results go to
``benchmarks/results/kernels.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from memos.kernels.side_glu import side_glu, side_glu_reference

GRID = [(4096, 576, 16), (4096, 576, 64), (8192, 2048, 64), (16384, 4096, 128), (16384, 4096, 256)]
QUICK = [(4096, 576, 16), (4096, 576, 64), (8192, 2048, 64)]


def _step(fn: Callable[..., torch.Tensor], inputs: list[torch.Tensor]) -> Callable[[], None]:
    def run() -> None:
        for t in inputs:
            t.grad = None
        fn(*inputs, 0.05).float().sum().backward()

    return run


def _time(run: Callable[[], None], device: str) -> float:
    if device == "cuda":
        import triton

        return float(triton.testing.do_bench(run, warmup=25, rep=100, return_mode="median"))
    run()
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        run()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def measure(tokens: int, d: int, r: int, device: str) -> dict[str, object]:
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    gen = torch.Generator(device=device).manual_seed(0)
    inputs = [
        torch.randn(tokens, d, device=device, generator=gen, dtype=dtype),
        torch.randn(d, r, device=device, generator=gen, dtype=dtype) / d**0.5,
        torch.randn(d, r, device=device, generator=gen, dtype=dtype) / d**0.5,
        torch.randn(r, d, device=device, generator=gen, dtype=dtype) / r**0.5,
    ]
    for t in inputs:
        t.requires_grad_()
    row: dict[str, object] = {"tokens": tokens, "d": d, "r": r, "dtype": str(dtype)}
    row["eager_ms"] = _time(_step(side_glu_reference, inputs), device)
    if device == "cuda":
        row["error"] = _relative_error(inputs)
        fused = _step(lambda *a: side_glu(*a, backend="triton"), inputs)
        row["fused_ms"] = _time(fused, device)
        row["eager_native_ms"] = _time(_step(native, inputs), device)
        row["compiled_ms"] = _time(_step(torch.compile(side_glu_reference), inputs), device)
        row["compiled_native_ms"] = _time(_step(torch.compile(native), inputs), device)
        for name in ("eager", "eager_native", "compiled", "compiled_native"):
            row[f"fused_over_{name}"] = row[f"{name}_ms"] / row["fused_ms"]  # type: ignore[operator]
    return row


def stages(tokens: int, d: int, r: int) -> dict[str, object]:
    """Where the fused path spends its time (CUDA, bf16): each kernel vs torch doing the same.

    ``shrink`` is ``m = silu(x @ G) * (x @ K)``; ``shrink_backward`` recomputes it
    and forms ``dG_pre``, ``dK_pre`` from ``dy``; the torch versions are the
    same arithmetic as separate bf16 cuBLAS GEMMs and elementwise kernels.
    """
    from memos.kernels import side_glu as sg

    gen = torch.Generator(device="cuda").manual_seed(1)
    x = torch.randn(tokens, d, device="cuda", generator=gen, dtype=torch.bfloat16)
    G, K = (
        torch.randn(d, r, device="cuda", generator=gen, dtype=torch.bfloat16) / d**0.5 for _ in "gk"
    )
    V = torch.randn(r, d, device="cuda", generator=gen, dtype=torch.bfloat16) / r**0.5
    dy = torch.randn(tokens, d, device="cuda", generator=gen, dtype=torch.bfloat16)

    def torch_shrink() -> None:
        torch.nn.functional.silu(x @ G) * (x @ K)

    def torch_shrink_backward() -> None:
        g, k, dm = x @ G, x @ K, (dy @ V.t()) * 0.05
        sig = torch.sigmoid(g)
        _ = dm * k * sig * (1 + g * (1 - sig)), dm * g * sig, g * sig * k

    with torch.no_grad():
        row: dict[str, object] = {
            "tokens": tokens,
            "d": d,
            "r": r,
            "shrink_ms": _time(lambda: sg.shrink_forward(x, G, K), "cuda"),
            "torch_shrink_ms": _time(torch_shrink, "cuda"),
            "shrink_backward_ms": _time(lambda: sg.shrink_backward(x, dy, G, K, V, 0.05), "cuda"),
            "torch_shrink_backward_ms": _time(torch_shrink_backward, "cuda"),
            "gemm_x_gk_ms": _time(lambda: x @ torch.cat([G, K], 1), "cuda"),
        }
    for name, kernel in (
        ("shrink", sg._shrink_fwd_kernel),
        ("shrink_backward", sg._shrink_bwd_kernel),
    ):
        best = getattr(kernel, "best_config", None)
        row[f"{name}_tile"] = str(best) if best is not None else None
    return row


def native(
    x: torch.Tensor, G: torch.Tensor, K: torch.Tensor, V: torch.Tensor, tau: float
) -> torch.Tensor:
    """The formula in the inputs' own dtype (bf16 matmuls), as a user would write it."""
    return tau * (torch.nn.functional.silu(x @ G) * (x @ K)) @ V


def _relative_error(inputs: list[torch.Tensor]) -> dict[str, float]:
    """``||fused - ref|| / ||ref||`` for the output and each gradient (fp32 reference)."""
    ref = [t.detach().float().requires_grad_() for t in inputs]
    fused = [t.detach().clone().requires_grad_() for t in inputs]
    y_ref, y = side_glu_reference(*ref, 0.05), side_glu(*fused, 0.05, backend="triton")
    dy = torch.randn_like(y_ref)
    y_ref.backward(dy)
    y.backward(dy.to(y.dtype))
    pairs = [("y", y, y_ref)] + [
        (f"d{n}", a.grad, b.grad) for n, a, b in zip("xGKV", fused, ref, strict=True)
    ]
    return {n: ((a.float() - b).norm() / b.norm()).item() for n, a, b in pairs}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="three small shapes only")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "kernels.json"))
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rows = [measure(*shape, device) for shape in (QUICK if args.quick or device == "cpu" else GRID)]
    name = torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu"
    breakdown = [stages(*shape) for shape in GRID[2:]] if device == "cuda" else []
    report = {
        "device": device,
        "device_name": name,
        "note": None if device == "cuda" else "no GPU: only the torch reference path was timed",
        "results": rows,
        "stages": breakdown,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    for row in rows:
        print(json.dumps(row))
    if device == "cuda":
        print(
            f"{'tokens':>6} {'d':>5} {'r':>4} {'fused':>8} {'eager':>8} {'eager16':>8} "
            f"{'compiled':>8} {'x eager':>7} {'x eager16':>9} {'x comp':>6}"
        )
        for row in rows:
            print(
                f"{row['tokens']:>6} {row['d']:>5} {row['r']:>4} {row['fused_ms']:>8.3f} "
                f"{row['eager_ms']:>8.3f} {row['eager_native_ms']:>8.3f} "
                f"{row['compiled_ms']:>8.3f} {row['fused_over_eager']:>7.2f} "
                f"{row['fused_over_eager_native']:>9.2f} {row['fused_over_compiled']:>6.2f}"
            )


if __name__ == "__main__":
    main()
