"""Evidence-retrieval recall on the LoCoMo format.

A LoCoMo file is a JSON list of samples. Each sample has a ``conversation``
(``speaker_a``, ``speaker_b``, ``session_<n>_date_time`` strings and
``session_<n>`` lists of turns ``{speaker, dia_id, text, blip_caption?}``) and
``qa``, a list of ``{question, answer, evidence: [dia_id, ...], category}``.
Every sample is ingested into a fresh cube, one item per turn, through
``Memos.add_messages`` (a turn's ``blip_caption`` goes to the metadata field
``image_caption``, its session to ``session_id``); each question is searched and
recall@k is the share of its evidence turns among the top k. MRR counts the
first evidence turn within the deepest cut-off; nDCG@10 takes each evidence
turn as relevant. Category 5 (adversarial) is excluded.

An *association check* can ride along (``associations=``): a JSON list of
``{"sample_id", "cue", "trigger"}``, where ``cue`` is the dia_id (or a list of
them) of a turn said in passing and ``trigger`` a later remark it bears on
without sharing its words ("should I sign up for the marathon?" for a knee
injury). Each trigger is searched in its sample's cube like a question, and
once more on the dense channel alone, so the report shows whether fusion keeps
purely semantic matches in the top k.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from memos.errors import EvalDataError
from memos.plaintext.search_keys import IMAGE_CAPTION

EXCLUDED_CATEGORIES = {5}
_SESSION = re.compile(r"^session_(\d+)$")
_DIA_SPLIT = re.compile(r"[;,\s]+")


@dataclass(frozen=True)
class Question:
    """One scored question."""

    text: str
    evidence: frozenset[str]
    category: int


@dataclass(frozen=True)
class Sample:
    """One conversation with its questions."""

    sample_id: str
    messages: list[dict[str, Any]]
    questions: list[Question]


def load_locomo(path: Path) -> list[Sample]:
    """Read and check a LoCoMo file; ``EvalDataError`` says what is wrong where."""
    raw = _read_json(path)
    if not isinstance(raw, list) or not raw:
        raise EvalDataError(f"{path}: expected a non-empty JSON list of samples")
    return [_sample(entry, i) for i, entry in enumerate(raw)]


def load_associations(path: Path, samples: list[Sample]) -> dict[str, list[Question]]:
    """Read an association check (see the module docs) against ``samples``:
    sample id -> its triggers as questions (category 0) whose evidence is the cue.

    Raises:
        EvalDataError: not a list of pairs, or a pair naming a sample or turn
            the file does not have.
    """
    raw = _read_json(path)
    if not isinstance(raw, list) or not raw:
        raise EvalDataError(f"{path}: expected a non-empty JSON list of cue/trigger pairs")
    turns = {s.sample_id: {m["metadata"]["dia_id"] for m in s.messages} for s in samples}
    out: dict[str, list[Question]] = {}
    for i, pair in enumerate(raw):
        where = f"{path}: pair {i}"
        if not isinstance(pair, dict) or not isinstance(pair.get("trigger"), str):
            raise EvalDataError(f"{where}: needs 'sample_id', 'cue' and a 'trigger' string")
        sample_id, cue = str(pair.get("sample_id")), pair.get("cue")
        if sample_id not in turns:
            raise EvalDataError(f"{where}: no sample {sample_id!r} in the conversations")
        cues = frozenset([cue] if isinstance(cue, str) else cue or [])
        if not cues or not all(isinstance(c, str) and c in turns[sample_id] for c in cues):
            raise EvalDataError(f"{where}: cue {cue!r} is not a turn of {sample_id}")
        out.setdefault(sample_id, []).append(Question(pair["trigger"], cues, 0))
    return out


def _read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EvalDataError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EvalDataError(f"{path}: not JSON ({exc})") from None


def _sample(entry: Any, position: int) -> Sample:
    where = f"sample {position}"
    if not isinstance(entry, dict) or not isinstance(entry.get("conversation"), dict):
        raise EvalDataError(f"{where}: needs a 'conversation' object")
    if not isinstance(entry.get("qa"), list):
        raise EvalDataError(f"{where}: needs a 'qa' list")
    sample_id = str(entry.get("sample_id", position))
    messages = _messages(entry["conversation"], where)
    questions = [q for i, qa in enumerate(entry["qa"]) if (q := _question(qa, f"{where} qa {i}"))]
    return Sample(sample_id, messages, questions)


def _messages(conversation: dict[str, Any], where: str) -> list[dict[str, Any]]:
    speakers = {
        conversation.get("speaker_a"): "speaker_a",
        conversation.get("speaker_b"): "speaker_b",
    }
    sessions = sorted((int(m.group(1)), key) for key in conversation if (m := _SESSION.match(key)))
    if not sessions:
        raise EvalDataError(f"{where}: conversation has no session_<n> lists")
    messages = []
    for number, key in sessions:
        when = _session_time(conversation.get(f"{key}_date_time"))
        turns = conversation[key]
        if not isinstance(turns, list):
            raise EvalDataError(f"{where}: {key} is not a list of turns")
        for turn in turns:
            if not isinstance(turn, dict) or not all(
                k in turn for k in ("speaker", "dia_id", "text")
            ):
                raise EvalDataError(f"{where}: {key} has a turn without speaker, dia_id and text")
            text = str(turn["text"]).strip() or "(no text)"
            metadata: dict[str, Any] = {"dia_id": str(turn["dia_id"]), "session": number}
            if turn.get("blip_caption"):
                metadata[IMAGE_CAPTION] = str(turn["blip_caption"])
            messages.append(
                {
                    "role": speakers.get(turn["speaker"], "speaker"),
                    "name": str(turn["speaker"]),
                    "content": text,
                    "timestamp": when,
                    "session_id": f"session-{number}",
                    "metadata": metadata,
                }
            )
    return messages


def _session_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    for pattern in ("%I:%M %p on %d %B, %Y", "%I:%M %p on %d %b, %Y"):
        try:
            return datetime.strptime(value.strip(), pattern).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    return None


def _question(qa: Any, where: str) -> Question | None:
    if not isinstance(qa, dict) or "question" not in qa:
        raise EvalDataError(f"{where}: needs a 'question'")
    try:
        category = int(qa.get("category", 0))
    except (TypeError, ValueError):
        raise EvalDataError(f"{where}: category {qa.get('category')!r} is not an integer") from None
    evidence = frozenset(
        part for ref in qa.get("evidence") or [] for part in _DIA_SPLIT.split(str(ref)) if part
    )
    if category in EXCLUDED_CATEGORIES or not evidence:
        return None
    return Question(str(qa["question"]), evidence, category)


def run_locomo(
    path: Path,
    cutoffs: Iterable[int] = (1, 5, 10, 20),
    *,
    mode: str = "hybrid",
    limit: int | None = None,
    embedder: str | None = None,
    home: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    memos_factory: Callable[..., Any] | None = None,
    config: Mapping[str, Any] | None = None,
    cube_prefix: str = "locomo",
    associations: Path | None = None,
) -> dict[str, Any]:
    """Ingest each sample into a fresh cube, search every question, report recall@k.

    Args:
        home: memory folder to use (default: a temporary one, removed after).
            Runs sharing a home reuse its cached embeddings (give each its own
            ``cube_prefix``).
        memos_factory: builds the ``Memos`` for a home, called as
            ``factory(home, **config)`` (default: the real embedder named by
            ``embedder``).
        config: ``MemosConfig`` fields to override.
        associations: an association check on the same conversations (see
            the module docs); its figures are the report's ``associations``.
    """
    samples = load_locomo(path)[:limit]
    pairs = load_associations(associations, samples) if associations else {}
    ks = sorted(set(cutoffs))
    with tempfile.TemporaryDirectory(prefix="memos-locomo-") as scratch:
        build = memos_factory or _default_factory(embedder)
        memos = build(Path(home or scratch), **dict(config or {}))
        try:
            result = _evaluate(memos, samples, pairs, ks, mode, str(path), progress, cube_prefix)
        finally:
            memos.close()
    result["config"] = dict(config or {})
    return result


def _default_factory(embedder: str | None) -> Callable[..., Any]:
    def build(home: Path, **overrides: Any) -> Any:
        from memos.client import Memos
        from memos.config import MemosConfig

        return Memos(MemosConfig(home=home, embedder=embedder or "default", **overrides))

    return build


def _evaluate(
    memos: Any,
    samples: list[Sample],
    pairs: Mapping[str, list[Question]],
    ks: list[int],
    mode: str,
    source: str,
    progress: Callable[[int, int], None] | None,
    prefix: str,
) -> dict[str, Any]:
    scores: list[tuple[int, dict[str, float]]] = []
    linked: dict[str, list[dict[str, float]]] = {"fused": [], "dense": []}
    latencies: list[float] = []
    ingest_s, ingested = 0.0, 0
    total = sum(len(s.questions) for s in samples)

    def ranked(query: str, cube: str, how: str) -> list[Any]:
        hits = memos.search(query, cube=cube, k=max(ks), mode=how)
        return [hit.item.metadata.get("dia_id") for hit in hits]

    for number, sample in enumerate(samples):
        cube = f"{prefix}-{number}-{re.sub(r'[^A-Za-z0-9_.-]', '_', sample.sample_id)[:60]}"
        start = time.perf_counter()
        memos.add_messages(sample.messages, cube=cube)
        ingest_s += time.perf_counter() - start
        ingested += len(sample.messages)
        for question in sample.questions:
            start = time.perf_counter()
            found = ranked(question.text, cube, mode)
            latencies.append(time.perf_counter() - start)
            scores.append((question.category, _measures(found, question.evidence, ks)))
            if progress:
                progress(len(scores), total)
        for pair in pairs.get(sample.sample_id, []):
            linked["fused"].append(_measures(ranked(pair.text, cube, mode), pair.evidence, ks))
            linked["dense"].append(_measures(ranked(pair.text, cube, "dense"), pair.evidence, ks))
    report = _report(scores, ks, samples, source, mode, ingested, ingest_s, latencies)
    if linked["fused"]:
        report["associations"] = {
            "n": len(linked["fused"]),
            **_mean(linked["fused"]),
            "dense": _mean(linked["dense"]),
        }
    return report


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    """Each measure's mean over ``rows`` (0 for none)."""
    names = list(rows[0]) if rows else []
    return {name: float(np.mean([r[name] for r in rows])) for name in names}


def _measures(ranked: list[Any], evidence: frozenset[str], ks: list[int]) -> dict[str, float]:
    """recall@k for each k, reciprocal rank of the first evidence turn, nDCG@10."""
    out = {f"recall@{k}": len(evidence.intersection(ranked[:k])) / len(evidence) for k in ks}
    first = next((i for i, dia in enumerate(ranked[: max(ks)], 1) if dia in evidence), None)
    out["mrr"] = 1 / first if first else 0.0
    gains = sum(1 / np.log2(i + 1) for i, dia in enumerate(ranked[:10], 1) if dia in evidence)
    ideal = sum(1 / np.log2(i + 1) for i in range(1, min(len(evidence), 10) + 1))
    out["ndcg@10"] = float(gains / ideal)
    return out


def _report(
    scores: list[tuple[int, dict[str, float]]],
    ks: list[int],
    samples: list[Sample],
    source: str,
    mode: str,
    ingested: int,
    ingest_s: float,
    latencies: list[float],
) -> dict[str, Any]:
    names = [*(f"recall@{k}" for k in ks), "mrr", "ndcg@10"]

    def summary(rows: list[dict[str, float]]) -> dict[str, float]:
        return _mean(rows) if rows else dict.fromkeys(names, 0.0)

    by_category = {
        str(c): {
            "n": sum(1 for cat, _ in scores if cat == c),
            **summary([r for cat, r in scores if cat == c]),
        }
        for c in sorted({cat for cat, _ in scores})
    }
    ms = np.asarray(latencies) * 1000 if latencies else np.zeros(1)
    return {
        "file": source,
        "mode": mode,
        "samples": len(samples),
        "questions": len(scores),
        "overall": summary([r for _, r in scores]),
        "by_category": by_category,
        "timing": {
            "ingest_items": ingested,
            "ingest_s": round(ingest_s, 3),
            "ingest_items_per_s": ingested / ingest_s if ingest_s else 0.0,
            "search_p50_ms": float(np.percentile(ms, 50)),
            "search_p95_ms": float(np.percentile(ms, 95)),
        },
    }
