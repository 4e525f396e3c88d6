"""Activation-tier benchmark: time to first token from a KV snapshot vs a full prefill.

For memory blocks of about 256, 1024 and 2048 tokens on the default model
(SmolLM2-135M-Instruct), measured side by side in one run (interleaved, median
of several repeats):

- TTFT with a snapshot: read the file, restore a fresh cache, prefill the
  user's turn, pick the first token (steady state: the file's BLAKE3 digest is
  checked on first use in a process, reported separately as first use);
- TTFT with a full prefill of the same prompt;
- the floor: a forward pass of only the user's turn with no cache, which is
  the least a snapshot can cost, and the ratio of the snapshot's TTFT to it
  (steady and first use);
- the same through ``Memos.chat`` (``--chat-sizes``): a temporary home with
  memories, ``build_snapshot``, then ``reply.ttft_s`` of
  ``mem.chat(..., max_new_tokens=1)`` against a forward of the same user-turn
  tokens with no cache, interleaved in the same process;
- the arithmetic bound: the multiply-adds of exact attention from the user's
  turn over the snapshot's keys, at this machine's float32 matmul peak
  (measured in the same run), added to the floor: ``bound_ratio`` is the least
  ratio any exact attention could reach here;
- for each snapshot dtype (``--dtypes``, float32 and bfloat16): bytes per
  token, load time, the first-token logits against a full prefill (max abs
  difference), and whether the first 24 greedy tokens are the same.

Usage: ``python benchmarks/activation.py [--sizes 256,1024,2048] [--chat-sizes 1024,2048]
[--repeats 5]``.
Results go to ``benchmarks/results/activation.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from plaintext import make_texts

from memos.activation import snapshot as kv_snapshot
from memos.client import Memos
from memos.config import MemosConfig
from memos.lm import LanguageModel, greedy, load_lm
from memos.memory_block import block_text, prefix_messages, prefix_text

QUESTION = "Which city did Ana visit most recently, and what did she do there?"
REPLY = 24  # greedy tokens compared between the snapshot and a full prefill


def prompt_for(lm: LanguageModel, tokens: int) -> tuple[str, list[int], list[int]]:
    """A memory block of about ``tokens`` tokens: (block, prefix ids, suffix ids)."""
    texts = make_texts(4 * tokens)
    count = 1
    while len(lm.encode(prefix_text(lm, block_text(texts[: count + 1])))) <= tokens:
        count += 1
    block = block_text(texts[:count])
    head = prefix_text(lm, block)
    full = lm.chat_text(
        [{"role": "system", "content": block}, {"role": "user", "content": QUESTION}], True
    )
    return block, lm.encode(head), lm.encode(full[len(head) :])


def first_logits(lm: LanguageModel, ids: list[int], cache: object = None) -> torch.Tensor:
    with torch.inference_mode():
        logits, _ = lm.forward(torch.tensor([ids]), cache)
    return logits[0, -1].float()


def matmul_peak_gflops(size: int = 1024, repeats: int = 10) -> float:
    """This machine's float32 matmul rate (best of ``repeats`` square products)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def attention_gflop(lm: LanguageModel, query_tokens: int, cached_tokens: int) -> float:
    """Floating-point work of attention from ``query_tokens`` over ``cached_tokens``
    keys in every layer (scores and weighted values: 4 flops per query, key and
    head dimension)."""
    config = lm.model.config
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return 4 * config.num_hidden_layers * heads * query_tokens * cached_tokens * head_dim / 1e9


def measure(
    lm: LanguageModel, tokens: int, repeats: int, folder: Path, dtype: str, peak_gflops: float
) -> dict[str, object]:
    _, prefix, suffix = prompt_for(lm, tokens)
    snapshot = kv_snapshot.prefill(lm, prefix, dtype)
    path = folder / f"kv-{tokens}-{dtype}.safetensors"
    sha, size = kv_snapshot.save(snapshot, path)
    kv_snapshot.forget_verified()  # first use below checks the digest, as in a new process

    floor_first = _timed(lambda: greedy(lm, suffix, None, 1, 0.0))
    start = time.perf_counter()
    greedy(
        lm, suffix, kv_snapshot.restore(lm, kv_snapshot.load(path, sha, lm.fingerprint)), 1, start
    )
    first_use = time.perf_counter() - start  # includes the digest check of the file
    cached_s, full_s, load_s, floor_s = [], [], [], []
    for _ in range(repeats):
        start = time.perf_counter()
        loaded = kv_snapshot.load(path, sha, lm.fingerprint)
        load_s.append(time.perf_counter() - start)
        greedy(lm, suffix, kv_snapshot.restore(lm, loaded), 1, start)
        cached_s.append(time.perf_counter() - start)
        floor_s.append(_timed(lambda: greedy(lm, suffix, None, 1, 0.0)))
        full_s.append(_timed(lambda: greedy(lm, prefix + suffix, None, 1, 0.0)))

    reference = first_logits(lm, prefix + suffix)
    restored = first_logits(lm, suffix, kv_snapshot.restore(lm, snapshot))
    same_reply = (
        greedy(lm, suffix, kv_snapshot.restore(lm, snapshot), REPLY, 0.0)[0]
        == (greedy(lm, prefix + suffix, None, REPLY, 0.0)[0])
    )
    cached, full = statistics.median(cached_s), statistics.median(full_s)
    floor = statistics.median(floor_s)
    bound = attention_gflop(lm, len(suffix), len(prefix)) / peak_gflops
    return {
        "dtype": dtype,
        "block_tokens": len(prefix),
        "question_tokens": len(suffix),
        "ttft_snapshot_ms": cached * 1000,
        "ttft_snapshot_first_use_ms": first_use * 1000,
        "ttft_prefill_ms": full * 1000,
        "floor_ms": floor * 1000,
        "ratio": cached / floor,
        "first_use_ratio": first_use / floor,
        "first_use_floor_ms": floor_first * 1000,
        "attention_bound_ms": bound * 1000,
        "bound_ratio": (floor + bound) / floor,
        "speedup": full / cached,
        "snapshot_load_ms": statistics.median(load_s) * 1000,
        "bytes_per_token": size / len(prefix),
        "logits_maxabs": float((restored - reference).abs().max()),
        "same_first_token": bool(restored.argmax() == reference.argmax()),
        "same_reply": same_reply,
    }


def measure_chat(
    lm: LanguageModel, tokens: int, repeats: int, home: Path, peak_gflops: float
) -> dict[str, object]:
    """``Memos.chat`` from a snapshot of about ``tokens`` tokens against its floor."""
    mem = Memos(MemosConfig(home=home), lm=lm)
    try:
        mem.add_many(make_texts(tokens // 8), cube="bench")
        info = mem.build_snapshot("bench", max_tokens=tokens)
        kv_snapshot.forget_verified()  # the first chat checks the digest, as in a new process
        block = mem.activation.block_of(info.id)
        full = lm.chat_text([*prefix_messages(block), {"role": "user", "content": QUESTION}], True)
        suffix = lm.encode(full[len(prefix_text(lm, block)) :])
        floor_first = _timed(lambda: greedy(lm, suffix, None, 1, 0.0))
        first = mem.chat(QUESTION, cube="bench", max_new_tokens=1)  # hashes the file
        ttft_s, floor_s = [], []
        for _ in range(repeats):
            reply = mem.chat(QUESTION, cube="bench", max_new_tokens=1)
            assert reply.snapshot_id == info.id and reply.cached_tokens == info.tokens
            assert reply.prompt_tokens - reply.cached_tokens == len(suffix)
            ttft_s.append(reply.ttft_s)
            floor_s.append(_timed(lambda: greedy(lm, suffix, None, 1, 0.0)))
    finally:
        mem.close()
    ttft, floor = statistics.median(ttft_s), statistics.median(floor_s)
    bound = attention_gflop(lm, len(suffix), info.tokens) / peak_gflops
    return {
        "dtype": info.dtype,
        "block_tokens": info.tokens,
        "question_tokens": len(suffix),
        "chat_ttft_ms": ttft * 1000,
        "floor_ms": floor * 1000,
        "ratio": ttft / floor,
        "chat_ttft_first_use_ms": first.ttft_s * 1000,
        "first_use_ratio": first.ttft_s / floor,
        "first_use_floor_ms": floor_first * 1000,
        "bound_ratio": (floor + bound) / floor,
    }


def _timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def _table(rows: list[dict[str, object]], columns: list[str]) -> None:
    print(" | ".join(columns))
    for row in rows:
        print(
            " | ".join(
                f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c]) for c in columns
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--sizes", default="256,1024,2048")
    parser.add_argument("--chat-sizes", default="1024,2048", help="'' to skip Memos.chat")
    parser.add_argument("--dtypes", default="float32,bfloat16", help="snapshot dtypes")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--lm", default="default", help="'default' or a transformers folder")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "activation.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        lm = load_lm(args.lm, MemosConfig.from_env().home)
        greedy(lm, lm.encode("warm up"), None, 1, time.perf_counter())
        peak = matmul_peak_gflops()
        rows = [
            measure(lm, int(n), args.repeats, home, dtype, peak)
            for n in args.sizes.split(",")
            if n
            for dtype in args.dtypes.split(",")
        ]
        chat_rows = [
            measure_chat(lm, int(n), args.repeats, home / f"chat-{n}", peak)
            for n in args.chat_sizes.split(",")
            if n
        ]
    device = (
        torch.cuda.get_device_name()
        if lm.device.startswith("cuda")
        else platform.processor() or "cpu"
    )
    report = {
        "model": str(lm.path.name),
        "device": lm.device,
        "device_name": device,
        "threads": torch.get_num_threads(),
        "matmul_peak_gflops": peak,
        "results": rows,
        "chat": chat_rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"float32 matmul peak: {peak:.0f} GFLOP/s")
    _table(
        rows,
        [
            "dtype",
            "block_tokens",
            "ttft_prefill_ms",
            "ttft_snapshot_ms",
            "floor_ms",
            "ratio",
            "attention_bound_ms",
            "bound_ratio",
            "speedup",
            "ttft_snapshot_first_use_ms",
            "first_use_ratio",
            "snapshot_load_ms",
            "bytes_per_token",
            "logits_maxabs",
            "same_reply",
        ],
    )
    if chat_rows:
        print("Memos.chat")
        _table(
            chat_rows,
            [
                "dtype",
                "block_tokens",
                "chat_ttft_ms",
                "floor_ms",
                "ratio",
                "bound_ratio",
                "chat_ttft_first_use_ms",
                "first_use_ratio",
            ],
        )


if __name__ == "__main__":
    main()
