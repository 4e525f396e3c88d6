"""Hybrid search: dense and keyword channels, fused by reciprocal rank.

One search catches the cube's indexes up with the database, asks the BM25
keyword index and FAISS (for the query's embedding) for their best items among
those the filter allows, keeps the candidates the filter passes, fuses their
ranks, blends in each candidate's retention (read from a light query of its
figures) and reads only the top ``k`` items from the database.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select

from memos import store
from memos.config import SEARCH_MODES
from memos.errors import InvalidInputError
from memos.lifecycle.retention import Figures, RetentionPolicy
from memos.plaintext.embedder import embed
from memos.plaintext.filters import SearchFilter
from memos.records import MemoryRecord, ScoreParts, SearchHit
from memos.store.models import Cube, Item

if TYPE_CHECKING:
    from memos.core import Core

MAX_K = 1000


@dataclass
class Retriever:
    """Runs hybrid searches over one database, embedder and set of indexes."""

    core: Core

    @property
    def policy(self) -> RetentionPolicy:
        return self.core.config.retention

    def search(
        self, cube: Cube, query: str, k: int, flt: SearchFilter, mode: str, now: datetime
    ) -> list[SearchHit]:
        """Best ``k`` hits for ``query`` in ``cube`` (see :class:`ScoreParts`).

        Items purged by another process since the index saw them are dropped.
        """
        if mode not in SEARCH_MODES:
            raise InvalidInputError(f"mode={mode!r}; allowed: {', '.join(SEARCH_MODES)}")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise InvalidInputError(f"k={k!r}; allowed: an integer from 1 to {MAX_K}")
        want = max(self.core.config.candidates, k)
        index = self.core.indexes.get(cube, cube.revision)  # catches up both channels
        if flt == SearchFilter():
            # The plain filter: only archived and forgotten items are excluded,
            # and the index manager knows which those are. Over-fetch, then drop.
            fetch, allowed, hidden = (
                want + len(self.core.indexes.hidden(cube.pk)),
                None,
                self.core.indexes.hidden(cube.pk),
            )
        else:
            fetch, allowed, hidden = want, self._filtered(cube, flt), set()
        lexical = (
            self.core.indexes.keyword(cube).search(query, fetch, allowed) if mode != "dense" else []
        )
        dense: list[tuple[int, float]] = []
        if mode != "keyword":
            vector = embed(self.core.embedder, [query])[0]  # [dim]
            dense = index.search(vector, fetch, allowed)
        dense = [(pk, s) for pk, s in dense if pk not in hidden][:want]
        lexical = [(pk, s) for pk, s in lexical if pk not in hidden][:want]
        return self._fuse(cube, dense, lexical, k, now)

    def _filtered(self, cube: Cube, flt: SearchFilter) -> set[int]:
        with self.core.db.read() as session:
            return set(session.scalars(select(Item.pk).where(flt.where(cube.pk))))

    def _fuse(
        self,
        cube: Cube,
        dense: list[tuple[int, float]],
        lexical: list[tuple[int, float]],
        k: int,
        now: datetime,
    ) -> list[SearchHit]:
        d_rank, k_rank = _ranks(dense), _ranks(lexical)
        cfg = self.core.config
        w_d, w_k = cfg.dense_weight, cfg.keyword_weight
        best = (w_d * bool(dense) + w_k * bool(lexical)) / (cfg.rrf_k + 1) or 1.0
        fused: dict[int, float] = {}
        for pk in dict.fromkeys([*d_rank, *k_rank]):
            dr, kr = d_rank.get(pk, (None, 0.0))[0], k_rank.get(pk, (None, 0.0))[0]
            score = (w_d / (cfg.rrf_k + dr) if dr else 0.0) + (
                w_k / (cfg.rrf_k + kr) if kr else 0.0
            )
            fused[pk] = score / best
        w = cfg.retention_weight
        key = {pk: -d_rank.get(pk, (0, -1.0))[1] for pk in fused}
        if w:
            # One read: the full rows of every candidate that can still make the
            # top k carry the figures retention needs.
            records = self._hydrate(cube, _contenders(fused, k, w))
            retention = self._retention(records, now)
        else:
            # Without retention the order is known already: load only the top k.
            records = self._hydrate(cube, sorted(fused, key=lambda pk: (-fused[pk], key[pk]))[:k])
            retention = {}
        final = {pk: (1 - w) * fused[pk] + w * retention.get(pk, 0.0) for pk in records}
        hits = []
        for pk in sorted(final, key=lambda pk: (-final[pk], key[pk]))[:k]:
            dr, ds = d_rank.get(pk, (None, None))
            kr, ks = k_rank.get(pk, (None, None))
            parts = ScoreParts(ds, dr, ks, kr, fused[pk], retention.get(pk, 1.0), final[pk])
            hits.append(SearchHit(records[pk], final[pk], parts))
        hits.sort(key=lambda h: (-h.score, -(h.parts.dense or -1.0), h.item.id))
        return hits

    def _retention(self, records: dict[int, MemoryRecord], now: datetime) -> dict[int, float]:
        """R of each record at ``now``, counting the recalls not yet written."""
        figures: Mapping[str, Figures] = {record.id: record for record in records.values()}
        if self.core.recalls is not None:
            figures = self.core.recalls.overlay(figures)
        return {pk: self.policy.retention(figures[r.id], now) for pk, r in records.items()}

    def _hydrate(self, cube: Cube, pks: list[int]) -> dict[int, MemoryRecord]:
        if not pks:
            return {}
        with self.core.db.read() as session:
            records = store.records_by_pk(session, pks, cube.name)
        gone = [pk for pk in pks if pk not in records]
        if gone:
            self.core.indexes.forget(cube.pk, gone)
        return records


def _contenders(fused: dict[int, float], k: int, w: float) -> list[int]:
    """Candidates that can reach the top ``k`` once retention (weight ``w``) joins.

    A candidate scores at most ``(1 - w) * f + w``, and each of the ``k`` best
    by fused score at least ``(1 - w) * f_k``: one with ``f < f_k - w / (1 - w)``
    cannot make the top ``k``, so its retention is never read.
    """
    if w >= 1 or len(fused) <= k:
        return list(fused)
    f_k = sorted(fused.values(), reverse=True)[k - 1]
    floor = f_k - w / (1 - w)
    return [pk for pk, f in fused.items() if f >= floor]


def _ranks(hits: list[tuple[int, float]]) -> dict[int, tuple[int, float]]:
    """pk -> (1-based rank, score); equal scores share the best rank of their group."""
    ranks: dict[int, tuple[int, float]] = {}
    rank, previous = 0, None
    for position, (pk, score) in enumerate(hits, 1):
        if previous is None or not math.isclose(score, previous, rel_tol=1e-6, abs_tol=1e-9):
            rank, previous = position, score
        ranks[pk] = (rank, score)
    return ranks
