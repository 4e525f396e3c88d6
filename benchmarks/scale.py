"""Curves for sizing memos past one machine (``docs/scaling.md`` is written from them).

Parts, each in fresh processes so resident memory is measured cleanly:

- ``index``: one cube of N items (10^4, 10^5, ``--max-items``): the time to load
  its indexes in a new process (dense file + keyword index from the database),
  the resident memory they add, and the estimate the index budget uses;
- ``budget``: ten times more cubes than ``--budget-mb`` holds, searched in turn
  by one process with that budget: resident memory growth against the budget;
- ``postgres``: bytes per item in PostgreSQL (every table of an item: row,
  versions, tags, cached vector, events) at 10^4 items.

The hashing embedder (64 dimensions) is used: it measures the store, not the
model; a 384-dimension model adds 1.3 KB of vector per item (reported).

    python benchmarks/scale.py [--parts index,budget,postgres] [--max-items 100000]

Results go to ``benchmarks/results/scale.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pg import create_database, pg_bin, postgres_server
from workload import fact

HERE = Path(__file__).resolve().parent
PROBE = """
import json, os, sys, time
from pathlib import Path
from memos.client import Memos
from memos.config import MemosConfig

def rss():
    for line in open(f"/proc/{os.getpid()}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) * 1024

home, url, cubes, budget = sys.argv[1], sys.argv[2] or None, json.loads(sys.argv[3]), sys.argv[4]
config = MemosConfig(home=Path(home), database_url=url, embedder="hashing",
                     index_cache_mb=float(budget) if budget else None)
mem = Memos(config)
mem.add("a memory that loads the libraries", cube="warm-up")
mem.search("warm up the libraries", cube="warm-up")  # FAISS, numpy, SQLAlchemy
import gc; gc.collect()
before = rss()
started = time.perf_counter()
for cube in cubes:
    mem.search("what did Ana do in Lisbon", cube=cube)
elapsed = time.perf_counter() - started
gc.collect()
print(json.dumps({"seconds": elapsed, "rss_growth": rss() - before,
                  "estimate": mem.indexes.memory_bytes(), "evictions": mem.indexes.evictions}))
"""


def seed(home: Path, url: str | None, cube: str, items: int) -> None:
    from memos.client import Memos
    from memos.config import MemosConfig

    mem = Memos(MemosConfig(home=home, database_url=url, embedder="hashing"))
    rng = random.Random(len(cube))
    for start in range(0, items, 20_000):
        chunk = range(start, min(items, start + 20_000))
        mem.add_many([fact(rng, f"{cube} {i}") for i in chunk], cube=cube)
    mem.search("save the index file", cube=cube)
    mem.close()


def probe(home: Path, url: str | None, cubes: list[str], budget_mb: float | None) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            PROBE,
            str(home),
            url or "",
            json.dumps(cubes),
            str(budget_mb or ""),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def index_curve(sizes: list[int]) -> list[dict[str, Any]]:
    rows = []
    for items in sizes:
        home = Path(tempfile.mkdtemp(prefix="memos-scale-")) / "home"
        started = time.perf_counter()
        seed(home, None, "big", items)
        seeded = time.perf_counter() - started
        figures = probe(home, None, ["big"], None)
        rows.append(
            {
                "items": items,
                "seed_s": round(seeded, 1),
                "load_s": round(figures["seconds"], 2),
                "load_s_per_10k": round(figures["seconds"] * 10_000 / items, 3),
                "rss_mb": round(figures["rss_growth"] / 2**20, 1),
                "rss_bytes_per_item": round(figures["rss_growth"] / items),
                "estimate_mb": round(figures["estimate"] / 2**20, 1),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def budget_check(budget_mb: float) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="memos-budget-")) / "home"
    per_cube_items = 1500
    seed(home, None, "c0", per_cube_items)
    one = probe(home, None, ["c0"], None)["estimate"]
    fit = max(1, int(budget_mb * 2**20 // one))
    cubes = [f"c{n}" for n in range(10 * fit)]
    for cube in cubes[1:]:
        seed(home, None, cube, per_cube_items)
    figures = probe(home, None, cubes, budget_mb)
    growth = figures["rss_growth"] / 2**20
    row = {
        "budget_mb": budget_mb,
        "cubes": len(cubes),
        "cubes_that_fit": fit,
        "items_per_cube": per_cube_items,
        "rss_growth_mb": round(growth, 1),
        "within_budget_plus_20pct": growth <= budget_mb * 1.2,
        "evictions": figures["evictions"],
        "seconds_to_search_every_cube": round(figures["seconds"], 1),
    }
    print(json.dumps(row), flush=True)
    return row


def postgres_bytes(items: int) -> dict[str, Any] | None:
    bin_dir = pg_bin()
    if bin_dir is None:
        return None
    import psycopg

    with postgres_server(bin_dir) as server:
        url = create_database(server)
        home = Path(tempfile.mkdtemp(prefix="memos-pgsize-")) / "home"
        seed(home, url, "sized", items)
        dsn = url.replace("postgresql+psycopg", "postgresql")
        with psycopg.connect(dsn, autocommit=True) as conn:  # VACUUM runs outside a transaction
            conn.execute("VACUUM ANALYZE")
            tables = conn.execute(
                "SELECT relname, pg_total_relation_size(relid) FROM pg_stat_user_tables"
            ).fetchall()
    total = sum(size for _, size in tables)
    row = {
        "items": items,
        "bytes_per_item": round(total / items),
        "by_table": {name: round(size / items) for name, size in sorted(tables)},
    }
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="index,budget,postgres")
    parser.add_argument("--max-items", type=int, default=100_000)
    parser.add_argument("--budget-mb", type=float, default=64.0)
    parser.add_argument("--out", default=str(HERE / "results" / "scale.json"))
    args = parser.parse_args()
    parts = args.parts.split(",")
    out = Path(args.out)
    report: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    report["machine"] = {"cpus": os.cpu_count()}
    if "index" in parts:
        sizes = [n for n in (10_000, 100_000, 1_000_000) if n <= args.max_items]
        report["index"] = index_curve(sizes)
    if "budget" in parts:
        report["budget"] = budget_check(args.budget_mb)
    if "postgres" in parts:
        report["postgres"] = postgres_bytes(10_000)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
