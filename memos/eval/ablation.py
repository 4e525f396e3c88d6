"""Ablation of the search techniques on a LoCoMo-format file.

Each technique is a set of ``MemosConfig`` fields; turning it off sets them to
the values of the plain pipeline memos had before (reciprocal-rank fusion of
MiniLM and BM25 over the stored text). The rows are the shipped defaults, the
defaults without each technique, the plain pipeline, and the plain pipeline
with each technique alone. All rows share one memory folder, so the texts are
embedded once (ingest rates after the first row are cache reads, not embeds).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from memos.config import MemosConfig
from memos.errors import ConfigError

TECHNIQUES: dict[str, dict[str, Any]] = {
    # Before "keys", so that turning everything off leaves no key fields.
    "question keys": {"key_fields": ("speaker", "caption", "date")},
    "keys": {"key_fields": ()},
    "stemming": {"keyword_stemming": False},
    "keyword evidence": {"keyword_evidence": 0.0},
    "fusion": {"fusion": "rrf", "dense_weight": 1.0, "keyword_weight": 0.5},
    "depth": {"candidates": 50, "keyword_candidates": 50},
    "neighbours": {"neighbour_weight": 0.0},
    "speaker": {"speaker_weight": 0.0},
    "time": {"time_weight": 0.0},
}
PLAIN: dict[str, Any] = {k: v for off in TECHNIQUES.values() for k, v in off.items()}


def ablation_rows(full: bool = True) -> dict[str, dict[str, Any]]:
    """Row name -> config overrides (``full``: also each technique alone)."""
    rows: dict[str, dict[str, Any]] = {"defaults": {}}
    rows.update({f"without {name}": dict(off) for name, off in TECHNIQUES.items()})
    rows["plain (all off)"] = dict(PLAIN)
    if full:
        for name, off in TECHNIQUES.items():
            rows[f"plain + {name}"] = {k: v for k, v in PLAIN.items() if k not in off}
    return rows


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["fusion=rrf", "candidates=80"]`` -> typed ``MemosConfig`` overrides.

    Raises:
        ConfigError: an unknown field or a value of the wrong type.
    """
    defaults = MemosConfig(home=Path("."))
    fields = {f.name for f in dataclasses.fields(MemosConfig)}
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name = name.strip()
        if not sep or name not in fields:
            raise ConfigError(f"--config {pair!r}: expected FIELD=VALUE with a MemosConfig field")
        out[name] = _typed(name, raw.strip(), getattr(defaults, name))
    MemosConfig(home=Path("."), **out)  # validates the values
    return out


def _typed(name: str, raw: str, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError(raw)
            return raw.lower() in ("true", "1")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, tuple):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        if default is None or isinstance(default, str):
            return raw
    except ValueError:
        pass
    raise ConfigError(f"--config {name}={raw!r}: expected a {type(default).__name__}")


def run_ablation(
    path: Path,
    run: Callable[..., dict[str, Any]],
    rows: Mapping[str, Mapping[str, Any]],
    base: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """One report per row: ``run(path, config=..., home=..., cube_prefix=...)``
    with ``base`` overrides under each row's, in one shared memory folder."""
    import tempfile

    out = {}
    with tempfile.TemporaryDirectory(prefix="memos-ablation-") as home:
        for number, (name, overrides) in enumerate(rows.items()):
            config = {**(base or {}), **overrides}
            out[name] = run(path, config=config, home=Path(home), cube_prefix=f"row{number}")
    return out
