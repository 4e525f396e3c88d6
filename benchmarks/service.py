"""Service benchmark: ``memos serve`` under a mixed load, on SQLite and on PostgreSQL.

For each backend, in one run:

- seed a tenant's cube with ``--items`` memories (in process), then time the
  in-process SDK's search p50 on that data, one query at a time;
- start ``memos serve`` (``--workers`` workers, on 127.0.0.1 only) and time one
  client's search p50 through HTTP on the same queries (the service's own
  overhead: target p50 <= in-process p50 + 5 ms);
- run ``--clients`` concurrent clients for ``--seconds``: 70% search, 25% add,
  5% update of an item the client added; report throughput, p50/p95/p99 per
  operation and errors (target 0);
- read back every acknowledged write (an add or an update answered 2xx) and
  count those missing or holding an older text (target 0).

PostgreSQL is a throwaway cluster started the way the tests start it (skipped
when its binaries are missing). The embedder is the deterministic hashing one
unless ``--embedder default``: it measures the service, not the model.

Usage: ``python benchmarks/service.py [--seconds 60] [--clients 32] [--backends sqlite,postgres]``.
Results go to ``benchmarks/results/service.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from pg import create_database, pg_bin, postgres_server
from service_helpers import ServeProcess

from memos.client import Memos
from memos.config import MemosConfig
from memos.service import keys
from memos.service.tenancy import TenantMemos

NAMES = "Ana Ben Cy Di Eli Fay Gus Hal Ivy Jon Kai Lea Max Nia Oto Pia Quin Rae Sol Tia".split()
ACTS = "hiked baked read fixed painted learned planted ran wrote visited adopted cooked".split()
PLACES = "Lisbon Porto Oslo Kyoto Lima Quito Cairo Accra Hanoi Perth Cork Bergen".split()
CUBE = "bench"


def fact(rng: random.Random, tag: str) -> str:
    return (
        f"{rng.choice(NAMES)} {rng.choice(ACTS)} in {rng.choice(PLACES)} "
        f"on day {rng.randrange(1000)} ({tag})"
    )


def query(rng: random.Random) -> str:
    return f"what did {rng.choice(NAMES)} do in {rng.choice(PLACES)}"


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def seed(home: Path, url: str | None, embedder: str, items: int) -> tuple[str, float]:
    """Fill the cube, make a key, and time in-process search; (key, p50 ms)."""
    mem = Memos(MemosConfig(home=home, database_url=url, embedder=embedder))
    view = TenantMemos(mem, "bench")
    rng = random.Random(0)
    view.add_many([fact(rng, f"seed {i}") for i in range(items)], cube=CUBE)
    key, _ = keys.create_key(mem.db, "bench", ("read", "write"), mem.clock.now(), "bench")
    queries = [query(rng) for _ in range(300)]
    for q in queries[:20]:  # warm the index and caches
        view.search(q, cube=CUBE, k=10)
    times = []
    for q in queries:
        started = time.perf_counter()
        view.search(q, cube=CUBE, k=10)
        times.append(time.perf_counter() - started)
    mem.close()
    return key, statistics.median(times) * 1000


def quiet_search_p50(url: str, key: str) -> float:
    rng = random.Random(1)
    headers = {"Authorization": f"Bearer {key}"}
    times = []
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        for i in range(320):
            body = {"query": query(rng), "k": 10}
            started = time.perf_counter()
            response = client.post(f"/v1/cubes/{CUBE}/search", json=body)
            elapsed = time.perf_counter() - started
            response.raise_for_status()
            if i >= 20:
                times.append(elapsed)
    return statistics.median(times) * 1000


class Load:
    """``clients`` threads, each with its own keep-alive connection, for ``seconds``."""

    def __init__(self, url: str, key: str, clients: int, seconds: float) -> None:
        self.url, self.key, self.clients, self.seconds = url, key, clients, seconds
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = {"search": [], "add": [], "update": []}
        self.errors: dict[str, int] = {"search": 0, "add": 0, "update": 0}
        self.acked: dict[str, str] = {}  # item id -> last acknowledged text

    def client(self, n: int, deadline: float) -> None:
        rng = random.Random(100 + n)
        mine: list[str] = []
        headers = {"Authorization": f"Bearer {self.key}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=60) as http:
            for i in range(1_000_000):
                if time.monotonic() >= deadline:
                    return
                roll = rng.random()
                if roll < 0.70:
                    op = "search"
                elif roll < 0.95 or not mine:
                    op = "add"
                else:
                    op = "update"
                text = fact(rng, f"client {n} op {i}")
                started = time.perf_counter()
                try:
                    if op == "search":
                        r = http.post(f"/v1/cubes/{CUBE}/search", json={"query": query(rng)})
                    elif op == "add":
                        r = http.post(f"/v1/cubes/{CUBE}/items", json={"text": text})
                    else:
                        item_id = rng.choice(mine)
                        r = http.patch(f"/v1/items/{item_id}", json={"text": text})
                    ok = r.status_code < 300
                except httpx.HTTPError:
                    ok = False
                elapsed = time.perf_counter() - started
                with self.lock:
                    if not ok:
                        self.errors[op] += 1
                        continue
                    self.latency[op].append(elapsed)
                    if op != "search":
                        self.acked[r.json()["id"]] = text
                if op == "add":
                    mine.append(r.json()["id"])

    def run(self) -> float:
        deadline = time.monotonic() + self.seconds
        threads = [
            threading.Thread(target=self.client, args=(n, deadline)) for n in range(self.clients)
        ]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=self.seconds + 300)
        return time.perf_counter() - started

    def lost(self) -> int:
        """Acknowledged writes missing or not holding their last acknowledged text."""
        missing = 0
        headers = {"Authorization": f"Bearer {self.key}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=60) as http:
            for item_id, text in self.acked.items():
                r = http.get(f"/v1/items/{item_id}")
                if r.status_code != 200 or r.json()["text"] != text:
                    missing += 1
        return missing


def measure(backend: str, url: str | None, args: argparse.Namespace) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix=f"memos-bench-{backend}-")) / "home"
    key, inproc_p50 = seed(home, url, args.embedder, args.items)
    with ServeProcess(home, workers=args.workers, db_url=url, embedder=args.embedder) as server:
        quiet_p50 = quiet_search_p50(server.url, key)
        load = Load(server.url, key, args.clients, args.seconds)
        wall = load.run()
        lost = load.lost()
    ops = {
        op: {
            "count": len(values),
            "p50_ms": round(pct(values, 0.50), 2),
            "p95_ms": round(pct(values, 0.95), 2),
            "p99_ms": round(pct(values, 0.99), 2),
            "errors": load.errors[op],
        }
        for op, values in load.latency.items()
    }
    done = sum(len(v) for v in load.latency.values())
    return {
        "backend": backend,
        "seconds": round(wall, 1),
        "throughput_ops_s": round(done / wall, 1),
        "ops": ops,
        "errors": sum(load.errors.values()),
        "acknowledged_writes": len(load.acked),
        "acknowledged_writes_lost": lost,
        "search_p50_ms_in_process": round(inproc_p50, 2),
        "search_p50_ms_service_one_client": round(quiet_p50, 2),
        "service_overhead_target_met": quiet_p50 <= inproc_p50 + 5.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--embedder", default="hashing")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "service.json"))
    args = parser.parse_args()
    rows = []
    for backend in args.backends.split(","):
        if backend == "sqlite":
            rows.append(measure("sqlite", None, args))
        elif backend == "postgres":
            bin_dir = pg_bin()
            if bin_dir is None:
                print("PostgreSQL binaries not found: skipping postgres", file=sys.stderr)
                continue
            with postgres_server(bin_dir) as server:
                rows.append(measure("postgres", create_database(server), args))
        else:
            parser.error(f"unknown backend {backend!r}; allowed: sqlite, postgres")
        print(json.dumps(rows[-1], indent=2), file=sys.stderr)
    report = {
        "benchmark": "service",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "settings": {
            "clients": args.clients,
            "workers": args.workers,
            "seconds": args.seconds,
            "items": args.items,
            "embedder": args.embedder,
            "mix": {"search": 0.70, "add": 0.25, "update": 0.05},
        },
        "results": rows,
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
