"""Hybrid search: dense and keyword channels, fused by reciprocal rank.

One search catches the cube's indexes up with the database, asks the BM25
keyword index and FAISS (for the query's embedding) for their best items among
those the filter allows, keeps the candidates the filter passes, fuses their
ranks, and reads only the top ``k`` items from the database. Retention enters
through a hook the lifecycle layer fills.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from memos import store
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

    def search(
        self, cube: Cube, query: str, k: int, flt: SearchFilter, mode: str, now: datetime
    ) -> list[SearchHit]:
        """Best ``k`` hits for ``query`` in ``cube`` (see :class:`ScoreParts`)."""
        if mode not in SEARCH_MODES:
            raise InvalidInputError(f"mode={mode!r}; allowed: {', '.join(SEARCH_MODES)}")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise InvalidInputError(f"k={k!r}; allowed: an integer from 1 to {MAX_K}")
        want = max(self.config.candidates, k)
        index = self.indexes.get(cube, cube.revision)  # catches up both channels
        if flt == SearchFilter():
            # The plain filter: only archived and forgotten items are excluded,
            # and the index manager knows which those are. Over-fetch, then drop.
            fetch, allowed, hidden = (
                want + len(self.indexes.hidden(cube.pk)),
                None,
                self.indexes.hidden(cube.pk),
            )
        else:
            fetch, allowed, hidden = want, self._filtered(cube, flt), set()
        lexical = (
            self.indexes.keyword(cube).search(query, fetch, allowed) if mode != "dense" else []
        )
        dense: list[tuple[int, float]] = []
        if mode != "keyword":
            vector = embed(self.embedder, [query])[0]  # [dim]
            dense = index.search(vector, fetch, allowed)
        dense = [(pk, s) for pk, s in dense if pk not in hidden][:want]
        lexical = [(pk, s) for pk, s in lexical if pk not in hidden][:want]
        return self._fuse(cube, dense, lexical, k, now)

    def _filtered(self, cube: Cube, flt: SearchFilter) -> set[int]:
        with self.db.read() as session:
            return set(session.scalars(select(Item.pk).where(flt.where(cube.pk))))

    def _fuse(
        self,
        cube: Cube,
        dense: list[tuple[int, float]],
        lexical: list[tuple[int, float]],
        k: int,
        now: datetime,
    ) -> list[SearchHit]:
        d_rank = {pk: (rank, s) for rank, (pk, s) in enumerate(dense, 1)}
        k_rank = {pk: (rank, s) for rank, (pk, s) in enumerate(lexical, 1)}
        cfg = self.config
        w_d, w_k = cfg.dense_weight, cfg.keyword_weight
        best = (w_d * bool(dense) + w_k * bool(lexical)) / (cfg.rrf_k + 1) or 1.0
        fused: dict[int, float] = {}
        for pk in dict.fromkeys([*d_rank, *k_rank]):
            dr, kr = d_rank.get(pk, (None, 0.0))[0], k_rank.get(pk, (None, 0.0))[0]
            score = (w_d / (cfg.rrf_k + dr) if dr else 0.0) + (
                w_k / (cfg.rrf_k + kr) if kr else 0.0
            )
            fused[pk] = score / best
        # Without retention the order is known before hydration: load only the top k.
        order = sorted(fused, key=lambda pk: (-fused[pk], -d_rank.get(pk, (0, -1.0))[1]))
        wanted = order if cfg.retention_weight else order[:k]
        records = self._hydrate(cube, wanted)
        hits = []
        for pk in wanted:
            record = records.get(pk)
            if record is None:  # purged by another process since the index saw it
                continue
            retention = float(self.retention(record, now)) if cfg.retention_weight else 1.0
            final = (1 - cfg.retention_weight) * fused[pk] + cfg.retention_weight * retention
            dr, ds = d_rank.get(pk, (None, None))
            kr, ks = k_rank.get(pk, (None, None))
            parts = ScoreParts(ds, dr, ks, kr, fused[pk], retention, final)
            hits.append(SearchHit(record, final, parts))
        hits.sort(key=lambda h: (-h.score, -(h.parts.dense or -1.0), h.item.id))
        return hits[:k]

    def _hydrate(self, cube: Cube, pks: list[int]) -> dict[int, MemoryRecord]:
        if not pks:
            return {}
        with self.db.read() as session:
            records = store.records_by_pk(session, pks, cube.name)
        gone = [pk for pk in pks if pk not in records]
        if gone:
            self.indexes.forget(cube.pk, gone)
        return records
