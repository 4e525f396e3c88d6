"""Service benchmark: ``memos serve`` under a mixed load beside the in-process capacity.

For each backend (SQLite, PostgreSQL) and embedder (hashing, the default
MiniLM), in one run:

1. seed a tenant's cube with ``--items`` memories (in process);
2. **capacity**: the same op mix run in process, with no HTTP, by as many
   processes as the service has workers and as many threads in all as it has
   clients, for ``--seconds`` (``capacity_ops_s``);
3. **service**: ``memos serve`` with ``--workers`` workers on 127.0.0.1 and
   ``--clients`` keep-alive clients for ``--seconds`` (``throughput_ops_s``),
   from the lean generator in ``loadgen.py`` (a process of its own): 70 %
   search, 25 % add, 5 % update of an item the client added; p50/p95/p99 and
   errors per op;
4. read back every acknowledged write (answered 2xx) and count those missing
   or holding an older text (``acknowledged_writes_lost``, target 0).

``--soak MINUTES`` then runs the service alone for that long and reports the
p99 of each minute and each worker's RSS at its end (the tail and the memory
must stay flat). ``--profile DIR`` samples the workers with py-spy while the
load runs (flame graphs and the hottest frames, per worker).

PostgreSQL is a throwaway cluster started the way the tests start it (skipped
when its binaries are missing). Usage::

    python benchmarks/service.py [--seconds 60] [--clients 32] [--workers 2]
        [--backends sqlite,postgres] [--embedders hashing,default] [--soak 5]

Results go to ``benchmarks/results/service.json`` (a list under ``results``).
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pg import create_database, pg_bin, postgres_server
from service_helpers import ServeProcess
from workload import CUBE, TENANT, fact, pick_op, query

from memos.client import Memos
from memos.config import MemosConfig
from memos.service import keys
from memos.service.tenancy import TenantMemos

HERE = Path(__file__).resolve().parent
OPS = ("search", "add", "update")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def op_figures(latency: dict[str, list[float]], errors: dict[str, int]) -> dict[str, Any]:
    return {
        op: {
            "count": len(latency[op]),
            "p50_ms": round(pct(latency[op], 0.50), 2),
            "p95_ms": round(pct(latency[op], 0.95), 2),
            "p99_ms": round(pct(latency[op], 0.99), 2),
            "errors": errors[op],
        }
        for op in OPS
    }


def open_store(home: Path, url: str | None, embedder: str) -> Memos:
    return Memos(MemosConfig(home=home, database_url=url, embedder=embedder))


def seed(home: Path, url: str | None, embedder: str, items: int) -> tuple[str, float]:
    """Fill the cube and make a key; (key, in-process search p50 in ms, one at a time)."""
    mem = open_store(home, url, embedder)
    view = TenantMemos(mem, TENANT)
    rng = random.Random(0)
    view.add_many([fact(rng, f"seed {i}") for i in range(items)], cube=CUBE)
    key, _ = keys.create_key(mem.db, TENANT, ("read", "write"), mem.clock.now(), "bench")
    queries = [query(rng) for _ in range(220)]
    for q in queries[:20]:
        view.search(q, cube=CUBE, k=10)
    times = []
    for q in queries[20:]:
        started = time.perf_counter()
        view.search(q, cube=CUBE, k=10)
        times.append(time.perf_counter() - started)
    mem.close()
    return key, statistics.median(times) * 1000


# -- capacity: the same op mix in process -------------------------------------------


def _capacity_process(
    home: str, url: str | None, embedder: str, threads: int, seconds: float, base: int, out: Any
) -> None:
    mem = open_store(Path(home), url, embedder)
    view = TenantMemos(mem, TENANT)
    view.search("warm up", cube=CUBE)
    latency: dict[str, list[float]] = {op: [] for op in OPS}
    errors = dict.fromkeys(OPS, 0)
    lock = threading.Lock()
    start_at = time.monotonic() + 1.0
    deadline = start_at + seconds

    def run(n: int) -> None:
        rng = random.Random(10_000 + base + n)
        mine: list[str] = []
        time.sleep(max(0.0, start_at - time.monotonic()))
        i = 0
        while time.monotonic() < deadline:
            op = pick_op(rng, bool(mine))
            text = fact(rng, f"inproc {base + n} op {i}")
            i += 1
            started = time.perf_counter()
            try:
                if op == "search":
                    view.search(query(rng), cube=CUBE)
                elif op == "add":
                    mine.append(view.add(text, cube=CUBE).id)
                else:
                    view.update(rng.choice(mine), text)
            except Exception:  # counted, as the service's errors are
                with lock:
                    errors[op] += 1
                continue
            with lock:
                latency[op].append(time.perf_counter() - started)

    workers = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    mem.close()
    out.put({"latency": latency, "errors": errors})


def capacity(
    home: Path, url: str | None, embedder: str, processes: int, clients: int, seconds: float
) -> dict[str, Any]:
    """The op mix in ``processes`` processes with ``clients`` threads in all, no HTTP."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    per = [clients // processes + (i < clients % processes) for i in range(processes)]
    procs = [
        context.Process(
            target=_capacity_process,
            args=(str(home), url, embedder, per[i], seconds, 1000 * i, queue),
        )
        for i in range(processes)
    ]
    for proc in procs:
        proc.start()
    parts = [queue.get() for _ in procs]
    for proc in procs:
        proc.join()
    latency = {op: [t for p in parts for t in p["latency"][op]] for op in OPS}
    errors = {op: sum(p["errors"][op] for p in parts) for op in OPS}
    done = sum(len(v) for v in latency.values())
    return {
        "capacity_ops_s": round(done / seconds, 1),
        "capacity_ops": op_figures(latency, errors),
    }


# -- the service ------------------------------------------------------------------------


def load(port: int | list[int], key: str, clients: int, seconds: float, tag: str) -> dict[str, Any]:
    """Run the generator (its own process) and return what it measured; several
    ports spread the clients over replicas."""
    ports = port if isinstance(port, list) else [port]
    cmd = [
        sys.executable,
        str(HERE / "loadgen.py"),
        "--ports",
        ",".join(map(str, ports)),
        "--key",
        key,
        "--clients",
        str(clients),
        "--seconds",
        str(seconds),
        "--tag",
        tag,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def lost(url: str, key: str, acked: dict[str, str]) -> int:
    """Acknowledged writes missing or not holding their last acknowledged text."""
    missing = 0
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as h:
        for item_id, text in acked.items():
            r = h.get(f"/v1/items/{item_id}")
            if r.status_code != 200 or r.json()["text"] != text:
                missing += 1
    return missing


def profile(pids: list[int], seconds: float, folder: Path, label: str) -> list[str]:
    """Sample each worker with py-spy for ``seconds`` (in the background)."""
    folder.mkdir(parents=True, exist_ok=True)
    outputs = []
    for pid in pids:
        out = folder / f"{label}-worker{pid}.txt"
        spy = str(Path(sys.executable).with_name("py-spy"))
        options = ["--rate", "50", "--format", "raw", "--nonblocking", "--output", str(out)]
        subprocess.Popen(
            [spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), *options],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        outputs.append(str(out))
    return outputs


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(
    backend: str, new_url: Callable[[], str | None], embedder: str, args: argparse.Namespace
) -> dict[str, Any]:
    """One row: capacity and service, each on a store seeded alike from scratch."""
    row: dict[str, Any] = {"backend": backend, "embedder": embedder}
    if not args.no_capacity:
        home, url = _fresh(backend), new_url()
        seed(home, url, embedder, args.items)
        row |= capacity(home, url, embedder, args.workers, args.clients, args.seconds)
    home, url = _fresh(backend), new_url()
    key, inproc_p50 = seed(home, url, embedder, args.items)
    with ServeProcess(home, workers=args.workers, db_url=url, embedder=embedder) as server:
        one = load(server.port, key, 1, min(10.0, args.seconds), "quiet")
        quiet_p50 = pct(one["latency"]["search"], 0.5)
        if args.profile:
            profile(server.worker_pids(), args.seconds, Path(args.profile), f"{backend}-{embedder}")
        result = load(server.port, key, args.clients, args.seconds, "load")
        missing = lost(server.url, key, result["acked"])
        soak = run_soak(server, key, args) if args.soak else None
    done = sum(len(v) for v in result["latency"].values())
    row |= {
        "seconds": round(result["wall_s"], 1),
        "throughput_ops_s": round(done / result["wall_s"], 1),
        "ops": op_figures(result["latency"], result["errors"]),
        "errors": sum(result["errors"].values()),
        "statuses": result["statuses"],
        "error_samples": result["samples"],
        "acknowledged_writes": len(result["acked"]),
        "acknowledged_writes_lost": missing,
        "search_p50_ms_in_process": round(inproc_p50, 2),
        "search_p50_ms_service_one_client": round(quiet_p50, 2),
    }
    if "capacity_ops_s" in row:
        row["throughput_to_capacity"] = round(row["throughput_ops_s"] / row["capacity_ops_s"], 3)
    if soak is not None:
        row["soak"] = soak
    return row


def replicas(new_url: Callable[[], str | None], embedder: str, args: argparse.Namespace) -> dict:
    """One replica against ``args.replicas``, side by side, on PostgreSQL: each a
    ``memos serve`` with one worker and a home of its own, on one database."""
    row: dict[str, Any] = {"backend": "postgres", "embedder": embedder, "replicas": {}}
    for count in (1, args.replicas):
        url = new_url()
        key, _ = seed(_fresh("replica"), url, embedder, args.items)
        servers = [
            ServeProcess(_fresh(f"replica{n}"), workers=1, db_url=url, embedder=embedder)
            for n in range(count)
        ]
        try:
            result = load([s.port for s in servers], key, args.clients, args.seconds, "rep")
        finally:
            for server in servers:
                server.stop()
        done = sum(len(v) for v in result["latency"].values())
        row["replicas"][str(count)] = {
            "throughput_ops_s": round(done / result["wall_s"], 1),
            "ops": op_figures(result["latency"], result["errors"]),
        }
        print(json.dumps({count: row["replicas"][str(count)]["throughput_ops_s"]}), file=sys.stderr)
    one, many = (row["replicas"][k]["throughput_ops_s"] for k in ("1", str(args.replicas)))
    row["ratio"] = round(many / one, 3)
    return row


def _fresh(backend: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"memos-bench-{backend}-")) / "home"


def run_soak(server: ServeProcess, key: str, args: argparse.Namespace) -> dict[str, Any]:
    """``--soak`` minutes of load, one minute at a time: p99 and RSS per minute."""
    minutes = []
    for minute in range(int(args.soak)):
        result = load(server.port, key, args.clients, 60.0, f"soak {minute}")
        every = [t for op in OPS for t in result["latency"][op]]
        minutes.append(
            {
                "minute": minute + 1,
                "ops_s": round(len(every) / result["wall_s"], 1),
                "p99_ms": round(pct(every, 0.99), 1),
                "search_p99_ms": round(pct(result["latency"]["search"], 0.99), 1),
                "add_p99_ms": round(pct(result["latency"]["add"], 0.99), 1),
                "errors": sum(result["errors"].values()),
                "rss_mb": {str(p): round(rss_mb(p), 1) for p in server.worker_pids()},
            }
        )
        print(json.dumps(minutes[-1]), file=sys.stderr, flush=True)
    return {"minutes": minutes}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--embedders", default="hashing,default")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--soak", type=float, default=0.0, help="minutes of soak after the run")
    parser.add_argument("--no-capacity", action="store_true", help="skip the in-process run")
    parser.add_argument("--profile", default="", help="folder for py-spy samples of the workers")
    parser.add_argument(
        "--replicas", type=int, default=0, help="also 1 vs N replicas on PostgreSQL (N >= 2)"
    )
    parser.add_argument("--out", default=str(HERE / "results" / "service.json"))
    args = parser.parse_args()
    rows = []
    for backend in filter(None, args.backends.split(",")):
        for embedder in args.embedders.split(","):
            if backend == "sqlite":
                rows.append(measure("sqlite", lambda: None, embedder, args))
            elif backend == "postgres":
                bin_dir = pg_bin()
                if bin_dir is None:
                    print("PostgreSQL binaries not found: skipping postgres", file=sys.stderr)
                    continue
                with postgres_server(bin_dir) as server:
                    fresh = functools.partial(create_database, server)
                    rows.append(measure("postgres", fresh, embedder, args))
            else:
                parser.error(f"unknown backend {backend!r}; allowed: sqlite, postgres")
            print(json.dumps(rows[-1], indent=2), file=sys.stderr, flush=True)
    if args.replicas >= 2:
        bin_dir = pg_bin()
        if bin_dir is not None:
            with postgres_server(bin_dir) as server:
                fresh = functools.partial(create_database, server)
                rows.append(replicas(fresh, args.embedders.split(",")[0], args))
    report = {
        "benchmark": "service",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "settings": {
            "clients": args.clients,
            "workers": args.workers,
            "seconds": args.seconds,
            "items": args.items,
            "mix": {"search": 0.70, "add": 0.25, "update": 0.05},
            "soak_minutes": args.soak,
        },
        "results": rows,
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
