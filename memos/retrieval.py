"""Hybrid search: dense and keyword channels, fused by reciprocal rank.

One search reads the query embedding, asks FAISS for the nearest items (only
among those the filter allows), asks the keyword index for the best BM25
matches (with the same filter in SQL), hydrates the union from the database,
and fuses. Retention enters through a hook the lifecycle layer fills.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from memos import keyword, store
from memos.config import SEARCH_MODES, MemosConfig
from memos.db import Database
from memos.embedder import Embedder, embed
from memos.errors import InvalidInputError
from memos.filters import SearchFilter
from memos.indexes import IndexManager
from memos.models import Cube, Item
from memos.records import MemoryRecord, ScoreParts, SearchHit

RetentionFn = Callable[[MemoryRecord, datetime], float]
MAX_K = 1000


def full_retention(_item: MemoryRecord, _now: datetime) -> float:
    """The retention hook's default: every item fully retained."""
    return 1.0


@dataclass
class Retriever:
    """Runs hybrid searches over one database, embedder and set of indexes."""

    db: Database
    embedder: Embedder
    indexes: IndexManager
    config: MemosConfig
    retention: RetentionFn = full_retention

    def __post_init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="memos-keyword")

    def search(
        self, cube: Cube, query: str, k: int, flt: SearchFilter, mode: str, now: datetime
    ) -> list[SearchHit]:
        """Best ``k`` hits for ``query`` in ``cube`` (see :class:`ScoreParts`)."""
        if mode not in SEARCH_MODES:
            raise InvalidInputError(f"mode={mode!r}; allowed: {', '.join(SEARCH_MODES)}")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise InvalidInputError(f"k={k!r}; allowed: an integer from 1 to {MAX_K}")
        want = max(self.config.candidates, k)
        # The keyword query runs in a worker while this thread embeds the query.
        keyword_future = (
            self._pool.submit(self._keyword, cube.pk, query, flt, want) if mode != "dense" else None
        )
        dense = self._dense(cube, query, flt, want) if mode != "keyword" else []
        lexical = keyword_future.result() if keyword_future else []
        return self._fuse(cube, dense, lexical, flt, k, now)

    def _keyword(
        self, cube_pk: int, query: str, flt: SearchFilter, want: int
    ) -> list[tuple[int, float]]:
        with self.db.read() as session:
            return keyword.search(session, query, flt.where(cube_pk), want)

    def _dense(
        self, cube: Cube, query: str, flt: SearchFilter, want: int
    ) -> list[tuple[int, float]]:
        vector = embed(self.embedder, [query])[0]  # [dim]
        index = self.indexes.get(cube)
        if flt.is_default:
            # Only the state restriction applies: over-fetch, drop at hydration.
            return index.search(vector, 2 * want)
        with self.db.read() as session:
            allowed = set(session.scalars(select(Item.pk).where(flt.where(cube.pk))))
        return index.search(vector, want, allowed)

    def _fuse(
        self,
        cube: Cube,
        dense: list[tuple[int, float]],
        lexical: list[tuple[int, float]],
        flt: SearchFilter,
        k: int,
        now: datetime,
    ) -> list[SearchHit]:
        items = self._hydrate(cube, [pk for pk, _ in dense] + [pk for pk, _ in lexical], flt)
        dense = [(pk, s) for pk, s in dense if pk in items][: max(self.config.candidates, k)]
        lexical = [(pk, s) for pk, s in lexical if pk in items]
        d_rank = {pk: (rank, s) for rank, (pk, s) in enumerate(dense, 1)}
        k_rank = {pk: (rank, s) for rank, (pk, s) in enumerate(lexical, 1)}
        cfg = self.config
        w_d, w_k = cfg.dense_weight, cfg.keyword_weight
        best = (w_d * bool(dense) + w_k * bool(lexical)) / (cfg.rrf_k + 1) or 1.0
        hits = []
        for pk in dict.fromkeys([*d_rank, *k_rank]):
            dr, ds = d_rank.get(pk, (None, None))
            kr, ks = k_rank.get(pk, (None, None))
            fused = (w_d / (cfg.rrf_k + dr) if dr else 0.0) + (
                w_k / (cfg.rrf_k + kr) if kr else 0.0
            )
            fused /= best
            record = items[pk]
            retention = float(self.retention(record, now)) if cfg.retention_weight else 1.0
            final = (1 - cfg.retention_weight) * fused + cfg.retention_weight * retention
            parts = ScoreParts(ds, dr, ks, kr, fused, retention, final)
            hits.append(SearchHit(record, final, parts))
        hits.sort(key=lambda h: (-h.score, -(h.parts.dense or -1.0), h.item.id))
        return hits[:k]

    def _hydrate(self, cube: Cube, pks: list[int], flt: SearchFilter) -> dict[int, MemoryRecord]:
        wanted = list(dict.fromkeys(pks))
        if not wanted:
            return {}
        with self.db.read() as session:
            rows = session.scalars(
                select(Item).where(Item.pk.in_(wanted), flt.where(cube.pk))
            ).all()
            found = {row.pk: store.to_record(row, cube.name) for row in rows}
            gone = set(wanted) - set(found)
            if gone:
                present = set(session.scalars(select(Item.pk).where(Item.pk.in_(gone))))
                self.indexes.forget(cube.pk, sorted(gone - present))
        return found

    def close(self) -> None:
        self._pool.shutdown(wait=True)
