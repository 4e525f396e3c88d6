"""Side-GLU kernel benchmark: fused Triton forward+backward vs the eager torch reference.

On a CUDA device: tokens 4k-16k, d 576-4096, r 16-256, bf16; median times (with
``triton.testing.do_bench``) of forward+backward for the fused kernels, the
eager reference and ``torch.compile`` of it, and their ratios (target: fused
>= 1.5x eager). On a CPU-only machine the Triton path does not run (the
interpreter is for correctness, not speed): the reference path is timed at
the same shapes in fp32 and the device is recorded as CPU.

Usage: ``python benchmarks/kernels.py [--quick]``; results go to
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
        fused = _step(lambda *a: side_glu(*a, backend="triton"), inputs)
        row["fused_ms"] = _time(fused, device)
        row["compiled_ms"] = _time(_step(torch.compile(side_glu_reference), inputs), device)
        row["fused_over_eager"] = row["eager_ms"] / row["fused_ms"]  # type: ignore[operator]
        row["fused_over_compiled"] = row["compiled_ms"] / row["fused_ms"]  # type: ignore[operator]
    return row


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
    report = {
        "device": device,
        "device_name": name,
        "note": None if device == "cuda" else "no GPU: only the torch reference path was timed",
        "results": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
