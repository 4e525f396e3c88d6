"""Retrieval benchmark: LoCoMo-format evidence recall with and without each technique.

Runs ``memos eval locomo``'s ablation (:mod:`memos.eval.ablation`) on a
LoCoMo-format file: the shipped defaults, the defaults without each technique,
the plain pipeline (all off) and the plain pipeline with each technique alone.
Every row shares one memory folder, so texts are embedded once.

It also measures, side by side so that other load on the machine hits both
alike:

- ingest: the embedder's raw ``encode`` throughput on the largest
  conversation's turns, then ``add_messages`` of the same turns into a fresh
  folder (target ratio >= 0.9);
- search latency on that conversation's cube: the defaults, the plain
  pipeline and the floor (query encode + FAISS search), timed query by query
  in one loop (target: defaults p50 <= 15 ms at ~600 items).

The output holds figures only (recall, MRR, nDCG, timings): never text, names
or dates of the data, which is not ours to publish.

Usage: ``python benchmarks/retrieval.py PATH [--out FILE] [--quick] [--parts
ingest,latency,ablation]`` (``--quick``: only the defaults-without rows;
``--parts``: what to run, the rest of an existing output file is kept).
Results go to ``benchmarks/results/retrieval.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from memos.client import Memos
from memos.config import MemosConfig
from memos.eval.ablation import ablation_rows, run_ablation
from memos.eval.locomo import load_locomo, run_locomo
from memos.plaintext.embedder import SentenceTransformerEmbedder, embed


def _largest(path: Path) -> list[dict[str, Any]]:
    return max((s.messages for s in load_locomo(path)), key=len)


def ingest_side_by_side(path: Path, repeats: int = 3) -> dict[str, Any]:
    """Turns/s of raw encode and of ``add_messages`` on the largest conversation."""
    messages = _largest(path)
    embedder = SentenceTransformerEmbedder("default")
    # The exact texts add_messages embeds ("<speaker>: <content>").
    texts = [f"{m['name']}: {m['content']}" for m in messages]
    embed(embedder, texts[:64])  # warm up
    raw, stored = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        embed(embedder, texts)
        raw.append(len(texts) / (time.perf_counter() - start))
        with tempfile.TemporaryDirectory() as home:
            memos = Memos(MemosConfig(home=Path(home)), embedder=embedder)
            start = time.perf_counter()
            memos.add_messages(messages, cube="ingest")
            stored.append(len(texts) / (time.perf_counter() - start))
            memos.close()
    best_raw, best_stored = max(raw), max(stored)
    return {
        "turns": len(texts),
        "raw_encode_per_s": round(best_raw, 1),
        "add_messages_per_s": round(best_stored, 1),
        "ratio": round(best_stored / best_raw, 3),
    }


def latency_side_by_side(path: Path) -> dict[str, Any]:
    """Search p50/p95 (ms) of the defaults, the plain pipeline and the floor, interleaved."""
    import numpy as np

    from memos.eval.ablation import PLAIN

    sample = max(load_locomo(path), key=lambda s: len(s.messages))
    embedder = SentenceTransformerEmbedder("default")
    with tempfile.TemporaryDirectory() as home:
        shipped = Memos(MemosConfig(home=Path(home)), embedder=embedder)
        shipped.add_messages(sample.messages, cube="shipped")
        plain = Memos(MemosConfig(home=Path(home), **PLAIN), embedder=embedder)
        plain.add_messages(sample.messages, cube="plain")
        queries = [q.text for q in sample.questions]
        for memos, cube in ((shipped, "shipped"), (plain, "plain")):
            memos.search(queries[0], cube=cube, k=20)  # builds the indexes
        index = shipped.indexes.get(_cube(shipped, "shipped"))
        times: dict[str, list[float]] = {"defaults": [], "plain": [], "floor": []}
        for query in queries:
            start = time.perf_counter()
            shipped.search(query, cube="shipped", k=20)
            times["defaults"].append(time.perf_counter() - start)
            start = time.perf_counter()
            plain.search(query, cube="plain", k=20)
            times["plain"].append(time.perf_counter() - start)
            start = time.perf_counter()
            index.search(embed(embedder, [query])[0], 20)
            times["floor"].append(time.perf_counter() - start)
        shipped.close()
        plain.close()
    out: dict[str, Any] = {"items": len(sample.messages), "queries": len(queries)}
    for name, values in times.items():
        ms = np.asarray(values) * 1000
        out[f"{name}_p50_ms"] = round(float(np.percentile(ms, 50)), 2)
        out[f"{name}_p95_ms"] = round(float(np.percentile(ms, 95)), 2)
    out["defaults_over_floor"] = round(out["defaults_p50_ms"] / out["floor_p50_ms"], 2)
    out["defaults_over_plain"] = round(out["defaults_p50_ms"] / out["plain_p50_ms"], 2)
    return out


def _cube(memos: Memos, name: str) -> Any:
    from memos import store

    with memos.db.read() as session:
        return store.cube_by_name(session, name)


def _figures(report: dict[str, Any]) -> dict[str, Any]:
    def pct(block: dict[str, float]) -> dict[str, float]:
        return {
            k: round(100 * v, 1) if k.startswith("recall") else round(v, 4)
            for k, v in block.items()
            if k != "n"
        }

    out = {
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in report["config"].items()},
        "questions": report["questions"],
        "overall": pct(report["overall"]),
        "by_category": {c: {"n": b["n"], **pct(b)} for c, b in report["by_category"].items()},
        "search_p50_ms": round(report["timing"]["search_p50_ms"], 2),
        "search_p95_ms": round(report["timing"]["search_p95_ms"], 2),
    }
    linked = report.get("associations")
    if linked:
        fused = {k: v for k, v in linked.items() if k != "dense"}
        out["associations"] = {"n": linked["n"], **pct(fused), "dense": pct(linked["dense"])}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/retrieval.json"))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--parts", default="ingest,latency,ablation")
    parser.add_argument(
        "--associations",
        type=Path,
        help="an association check on the same file (see memos.eval.locomo); "
        "its pairs name the data's turns, so keep it beside the data, not here",
    )
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    ingest = ingest_side_by_side(args.path) if "ingest" in parts else previous.get("ingest")
    print("ingest", ingest, flush=True)
    latency = latency_side_by_side(args.path) if "latency" in parts else previous.get("latency")
    print("latency", latency, flush=True)
    if "ablation" in parts:
        rows = ablation_rows(full=not args.quick)
        run = functools.partial(run_locomo, associations=args.associations)
        reports = run_ablation(args.path, run, rows)
        table = {name: _figures(r) for name, r in reports.items()}
    else:
        table = previous.get("rows", {})
    for name, r in table.items():
        o = r["overall"]
        linked = r.get("associations")
        print(
            f"{name:28s} R@1 {o['recall@1']:5.1f} R@5 {o['recall@5']:5.1f} "
            f"R@10 {o['recall@10']:5.1f} R@20 {o['recall@20']:5.1f} MRR {o['mrr']:.3f} "
            + (
                f"assoc R@10 {linked['recall@10']:5.1f} "
                f"(dense {linked['dense']['recall@10']:5.1f}) "
                if linked
                else ""
            )
            + f"p50 {r['search_p50_ms']:.1f} ms",
            flush=True,
        )
    out = {
        "split": "LoCoMo dev (5 conversations; categories 1-4)",
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "defaults": {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in vars(MemosConfig(home=Path("."))).items()
            if k
            in (
                "fusion",
                "dense_weight",
                "keyword_weight",
                "keyword_evidence",
                "candidates",
                "keyword_candidates",
                "key_fields",
                "keyword_stemming",
                "neighbour_weight",
                "neighbour_radius",
                "speaker_weight",
                "time_weight",
            )
        },
        "ingest": ingest,
        "latency": latency,
        "rows": table,
    }
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
