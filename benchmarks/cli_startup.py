"""How long the CLI and the package take to start, and which heavy modules they load.

Runs each command ``--repeat`` times in a fresh process (after one warm-up run
that also creates the database) and reports the median and the fastest wall
time, side by side in one run. Targets: ``memos --help`` <= 0.3 s (no SQLAlchemy) and
``memos ls --json`` <= 1.0 s on a 2-core machine.

    python benchmarks/cli_startup.py [--repeat 10] [--out benchmarks/results/cli_startup.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAVY = ("torch", "transformers", "faiss", "sentence_transformers", "triton", "sqlalchemy")
PROBE = (
    "import sys, json, runpy\n"
    "sys.argv = ['memos', *json.loads(sys.argv[1])]\n"
    "try:\n"
    "    from memos.cli.main import main\n"
    "    main()\n"
    "except SystemExit:\n"
    "    pass\n"
    f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]), file=sys.stderr)\n"
)


def _time(argv: list[str], env: dict[str, str], repeat: int) -> dict[str, object]:
    memos_bin = str(Path(sys.executable).with_name("memos"))
    subprocess.run([memos_bin, *argv], env=env, capture_output=True, check=False)  # warm-up
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([memos_bin, *argv], env=env, capture_output=True, check=False)
        seconds.append(time.perf_counter() - start)
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(argv)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    loaded = json.loads(probe.stderr.strip().splitlines()[-1])
    return {
        "median_s": round(statistics.median(seconds), 3),
        "min_s": round(min(seconds), 3),
        "heavy_modules_loaded": loaded,
    }


def _time_import(code: str, repeat: int) -> dict[str, object]:
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        seconds.append(time.perf_counter() - start)
    return {"median_s": round(statistics.median(seconds), 3), "min_s": round(min(seconds), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/cli_startup.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "MEMOS_HOME": home, "MEMOS_EMBEDDER": "hashing"}
        memos_bin = str(Path(sys.executable).with_name("memos"))
        add = [memos_bin, "add", "a first memory"]
        subprocess.run(add, env=env, check=True, capture_output=True)
        rows = {
            "python -c 'import memos'": _time_import("import memos", args.repeat),
            "python -c 'from memos import Memos'": _time_import(
                "from memos import Memos", args.repeat
            ),
            "memos --help": _time(["--help"], env, args.repeat),
            "memos ls --json": _time(["ls", "--json"], env, args.repeat),
            "memos stats --json": _time(["stats", "--json"], env, args.repeat),
            "memos jobs --json": _time(["jobs", "--json"], env, args.repeat),
            "memos kv ls --json": _time(["kv", "ls", "--json"], env, args.repeat),
            "memos adapters ls --json": _time(["adapters", "ls", "--json"], env, args.repeat),
        }
    width = max(len(name) for name in rows)
    print(f"{'command':<{width}}  median   fastest  heavy modules")
    for name, row in rows.items():
        heavy = ", ".join(row.get("heavy_modules_loaded", [])) or "-"  # type: ignore[arg-type]
        print(f"{name:<{width}}  {row['median_s']:.3f} s  {row['min_s']:.3f} s  {heavy}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {"repeat": args.repeat, "cpus": os.cpu_count(), "rows": rows}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
