"""Hybrid search: dense and keyword channels, fused on normalized scores.

One search, in order:

1. catches the cube's indexes up with the database;
2. asks FAISS (for the query's embedding) and the BM25 index of keyword keys
   (:mod:`memos.plaintext.search_keys`) for their best ``candidates`` /
   ``keyword_candidates`` items among those the filter allows, each with the
   mean and spread of the query's score over the cube;
3. fuses them (:mod:`memos.plaintext.fusion`: z-score by default, or reciprocal rank),
   the keyword channel weighed by its evidence for this query: the share of the
   query's IDF mass its best hit holds (``keyword_evidence``), so a query whose
   words match nothing specific leans on the dense channel;
4. lifts each candidate by its best neighbour in the same session and brings
   those neighbours in (:mod:`memos.plaintext.neighbourhood`);
5. adds the bonuses the query's named speaker and period earn
   (:mod:`memos.plaintext.query_hints`);
6. blends in each candidate's retention (read from a light query of its
   figures) and reads only the top ``k`` items from the database.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from memos import store
from memos.filters import SearchFilter
from memos.plaintext.fusion import Channel, combine, normalize
from memos.plaintext.keyword import KeywordIndex
from memos.plaintext.neighbourhood import CubeLayout, smooth
from memos.plaintext.query_hints import named_period, named_speaker
from memos.records import MemoryRecord, ScoreParts, SearchHit
from memos.retention import Figures, RetentionPolicy
from memos.store.cubes import CubeRef
from memos.validation import check_search

if TYPE_CHECKING:
    from memos.config import MemosConfig
    from memos.core import Core


#: How many of the keyword channel's best hits its evidence is read from (on
#: the LoCoMo dev split, the best three gave the same recall as the best one).
EVIDENCE_HITS = 1


@dataclass
class Retriever:
    """Runs hybrid searches over one database, embedder and set of indexes."""

    core: Core

    @property
    def policy(self) -> RetentionPolicy:
        return self.core.config.retention

    def search(
        self, cube: CubeRef, query: str, k: int, flt: SearchFilter, mode: str, now: datetime
    ) -> list[SearchHit]:
        """Best ``k`` hits for ``query`` in ``cube`` (see :class:`ScoreParts`).

        Items purged by another process since the index saw them are dropped.
        """
        check_search(k, mode)
        cfg = self.core.config
        want_d, want_k = max(cfg.candidates, k), max(cfg.keyword_candidates, k)
        indexes = self.core.indexes.open(cube, cube.revision)  # loaded and caught up
        index = indexes.dense
        if flt == SearchFilter():
            # The plain filter: only archived and forgotten items are excluded,
            # and the index manager knows which those are. Over-fetch, then drop.
            hidden = indexes.hidden
            extra, allowed = len(hidden), None
        else:
            extra, allowed, hidden = 0, self._filtered(cube, flt), set()
        lexical: list[tuple[int, float]] = []
        k_stats = d_stats = (0.0, 0.0)
        if mode != "dense":
            lexical, k_stats = indexes.keyword.search_with_stats(query, want_k + extra, allowed)
        dense: list[tuple[int, float]] = []
        if mode != "keyword":
            vector = self.core.query_vectors.vector(query)  # [dim]
            dense = index.search(vector, want_d + extra, allowed)
            if cfg.fusion == "zscore":
                d_stats = index.score_stats(vector)
        dense = [(pk, s) for pk, s in dense if pk not in hidden][:want_d]
        lexical = [(pk, s) for pk, s in lexical if pk not in hidden][:want_k]
        if cfg.fusion == "rrf":
            fused, floor = _rrf(dense, lexical, cfg), 0.0
        else:
            channels: list[tuple[Channel, float]] = []
            if mode != "keyword":
                channels.append((normalize(dense, d_stats, cfg.fusion, None), cfg.dense_weight))
            if mode != "dense":
                kw = normalize(lexical, k_stats, cfg.fusion, 0.0)
                channels.append((kw, self._keyword_weight(indexes.keyword, query, lexical, mode)))
            fused, floor = combine(channels)

        def visible(pk: int) -> bool:
            return pk not in hidden and (allowed is None or pk in allowed)

        layout = indexes.layout
        fused = smooth(fused, floor, layout, cfg.neighbour_weight, cfg.neighbour_radius, visible)
        fused = self._hinted(fused, layout, query, now)
        return self._fuse(cube, fused, dense, lexical, k, now)

    def _keyword_weight(
        self, keyword: KeywordIndex, query: str, lexical: list[tuple[int, float]], mode: str
    ) -> float:
        """The keyword channel's weight for this query (see ``keyword_evidence``)."""
        cfg = self.core.config
        if mode != "hybrid":
            return 1.0
        if not cfg.keyword_evidence or not lexical:
            return cfg.keyword_weight
        share = keyword.coverage(query, [pk for pk, _ in lexical[:EVIDENCE_HITS]])
        return float(cfg.keyword_weight * share**cfg.keyword_evidence)

    def _hinted(
        self, fused: dict[int, float], layout: CubeLayout, query: str, now: datetime
    ) -> dict[int, float]:
        """Add the bonuses of the speaker and the period the query names."""
        cfg = self.core.config
        speaker = named_speaker(query, layout.speakers()) if cfg.speaker_weight else None
        period = named_period(query, now) if cfg.time_weight else None
        if speaker is None and period is None:
            return fused
        out = {}
        for pk, score in fused.items():
            placement = layout.get(pk)
            if placement is not None:
                said = placement.speaker
                if speaker is not None and said and said.lower() == speaker:
                    score += cfg.speaker_weight
                when = placement.event_time
                if period is not None and when is not None and period.contains(when):
                    score += cfg.time_weight
            out[pk] = score
        return out

    def _filtered(self, cube: CubeRef, flt: SearchFilter) -> set[int]:
        with self.core.db.read() as session:
            return store.filtered_pks(session, cube.pk, flt)

    def _fuse(
        self,
        cube: CubeRef,
        fused: dict[int, float],
        dense: list[tuple[int, float]],
        lexical: list[tuple[int, float]],
        k: int,
        now: datetime,
    ) -> list[SearchHit]:
        d_rank, k_rank = _ranks(dense), _ranks(lexical)
        cfg = self.core.config
        top = max(fused.values(), default=1.0)
        if cfg.fusion != "rrf" or top > 1:
            # Normalized and lifted scores are unbounded: the best candidate scores 1.
            if top > 1e-12:
                fused = {pk: f / top for pk, f in fused.items()}
            else:  # every candidate below the cube's mean (tiny cubes): shift, keep order
                fused = {pk: f - top + 1.0 for pk, f in fused.items()}
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

    def _hydrate(self, cube: CubeRef, pks: list[int]) -> dict[int, MemoryRecord]:
        if not pks:
            return {}
        with self.core.db.read() as session:
            records = store.records_by_pk(session, pks, cube.name)
        gone = [pk for pk in pks if pk not in records]
        if gone:
            self.core.indexes.forget(cube.pk, gone)
        return records


def _rrf(
    dense: list[tuple[int, float]], lexical: list[tuple[int, float]], cfg: MemosConfig
) -> dict[int, float]:
    """Weighted reciprocal-rank fusion, scaled so a first place in every channel scores 1."""
    d_rank, k_rank = _ranks(dense), _ranks(lexical)
    w_d, w_k = cfg.dense_weight, cfg.keyword_weight
    best = (w_d * bool(dense) + w_k * bool(lexical)) / (cfg.rrf_k + 1) or 1.0
    fused: dict[int, float] = {}
    for pk in dict.fromkeys([*d_rank, *k_rank]):
        dr, kr = d_rank.get(pk, (None, 0.0))[0], k_rank.get(pk, (None, 0.0))[0]
        score = (w_d / (cfg.rrf_k + dr) if dr else 0.0) + (w_k / (cfg.rrf_k + kr) if kr else 0.0)
        fused[pk] = score / best
    return fused


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
