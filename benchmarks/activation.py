"""Activation-tier benchmark: time to first token from a KV snapshot vs a full prefill.

For memory blocks of about 256, 1024 and 2048 tokens on the default model
(SmolLM2-135M-Instruct), measured side by side in one run (interleaved, median
of several repeats):

- TTFT with a snapshot: read the file, restore a fresh cache, prefill the
  user's turn, pick the first token (steady state: the file's SHA-256 is
  checked on first use in a process, reported separately as first use);
- TTFT with a full prefill of the same prompt;
- bytes per token and load time of the snapshot (fp32 and fp16), and what
  fp16 storage does to the first-token logits (max abs difference).

Usage: ``python benchmarks/activation.py [--sizes 256,1024,2048] [--repeats 5]``.
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
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from plaintext import make_texts

from memos.activation import snapshot as kv_snapshot
from memos.activation.tier import block_text, prefix_text
from memos.chat import greedy
from memos.config import MemosConfig
from memos.lm import LanguageModel, load_lm

QUESTION = "Which city did Ana visit most recently, and what did she do there?"


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
        out = lm.model(input_ids=torch.tensor([ids]), past_key_values=cache, use_cache=True)
    return out.logits[0, -1].float()


def measure(lm: LanguageModel, tokens: int, repeats: int, folder: Path) -> dict[str, object]:
    _, prefix, suffix = prompt_for(lm, tokens)
    snapshot = kv_snapshot.prefill(lm, prefix)
    path = folder / f"kv-{tokens}.safetensors"
    sha, size = kv_snapshot.save(snapshot, path)
    half = kv_snapshot.prefill(lm, prefix, "float16")
    half_path = folder / f"kv-{tokens}-fp16.safetensors"
    half_sha, half_size = kv_snapshot.save(half, half_path)

    start = time.perf_counter()
    greedy(
        lm, suffix, kv_snapshot.restore(lm, kv_snapshot.load(path, sha, lm.fingerprint)), 1, start
    )
    first_use = time.perf_counter() - start  # includes the SHA-256 check of the file
    cached_s, full_s, load_s = [], [], []
    for _ in range(repeats):
        start = time.perf_counter()
        loaded = kv_snapshot.load(path, sha, lm.fingerprint)
        load_s.append(time.perf_counter() - start)
        greedy(lm, suffix, kv_snapshot.restore(lm, loaded), 1, start)
        cached_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        greedy(lm, prefix + suffix, None, 1, start)
        full_s.append(time.perf_counter() - start)

    reference = first_logits(lm, prefix + suffix)
    from_fp32 = first_logits(lm, suffix, kv_snapshot.restore(lm, snapshot))
    loaded_half = kv_snapshot.load(half_path, half_sha, lm.fingerprint)
    from_fp16 = first_logits(lm, suffix, kv_snapshot.restore(lm, loaded_half))
    cached, full = statistics.median(cached_s), statistics.median(full_s)
    return {
        "block_tokens": len(prefix),
        "question_tokens": len(suffix),
        "ttft_snapshot_ms": cached * 1000,
        "ttft_snapshot_first_use_ms": first_use * 1000,
        "ttft_prefill_ms": full * 1000,
        "speedup": full / cached,
        "snapshot_load_ms": statistics.median(load_s) * 1000,
        "bytes_per_token_fp32": size / len(prefix),
        "bytes_per_token_fp16": half_size / len(prefix),
        "logits_maxabs_fp32": float((from_fp32 - reference).abs().max()),
        "logits_maxabs_fp16": float((from_fp16 - reference).abs().max()),
        "same_first_token_fp16": bool(from_fp16.argmax() == reference.argmax()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--sizes", default="256,1024,2048")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--lm", default="default", help="'default' or a transformers folder")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "activation.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        lm = load_lm(args.lm, MemosConfig.from_env().home)
        greedy(lm, lm.encode("warm up"), None, 1, time.perf_counter())
        rows = [measure(lm, int(n), args.repeats, home) for n in args.sizes.split(",")]
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
        "results": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    columns = [
        "block_tokens",
        "ttft_prefill_ms",
        "ttft_snapshot_ms",
        "speedup",
        "ttft_snapshot_first_use_ms",
        "snapshot_load_ms",
        "bytes_per_token_fp32",
        "bytes_per_token_fp16",
        "logits_maxabs_fp16",
    ]
    print(" | ".join(columns))
    for row in rows:
        print(
            " | ".join(
                f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c]) for c in columns
            )
        )


if __name__ == "__main__":
    main()
