"""Hybrid search: dense and keyword channels, fused on normalized scores.

One search, in order:

1. catches the cube's indexes up with the database;
2. runs the channels the mode asks for (:mod:`memos.plaintext.channels`): FAISS
   over the query's embedding and BM25 over the keyword keys
   (:mod:`memos.plaintext.search_keys`), each giving its best candidates among
   those the filter allows, the query's score statistics over the cube, and its
   weight for this query (the keyword channel's follows its evidence);
3. fuses them (:mod:`memos.plaintext.fusion`: z-score by default, or reciprocal rank);
4. lifts each candidate by its best neighbour in the same session and brings
   those neighbours in (:mod:`memos.plaintext.neighbourhood`);
5. adds the bonuses the query's named speaker and period earn
   (:mod:`memos.plaintext.query_hints`);
6. ranks: blends in each contender's retention (read with its row), and keeps
   the top ``k`` with their score parts.

Every setting comes from one :class:`memos.config.SearchConfig`, read once per search.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from memos import store
from memos.filters import SearchFilter
from memos.plaintext.channels import Channel, DenseChannel, KeywordChannel
from memos.plaintext.fusion import fuse, ranks
from memos.plaintext.neighbourhood import CubeLayout, smooth
from memos.plaintext.query_hints import named_period, named_speaker
from memos.records import MemoryRecord, ScoreParts, SearchHit
from memos.retention import Figures, RetentionPolicy
from memos.store.cubes import CubeRef
from memos.validation import check_search

if TYPE_CHECKING:
    from memos.config import SearchConfig
    from memos.core import Core


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
        cfg = self.core.config.search
        indexes = self.core.indexes.open(cube, cube.revision)  # loaded and caught up
        if flt == SearchFilter():
            # The plain filter: only archived and forgotten items are excluded,
            # and the index manager knows which those are.
            allowed, hidden = None, indexes.hidden
        else:
            allowed, hidden = self._filtered(cube, flt), set()
        channels: list[Channel] = []
        if mode != "keyword":
            channels.append(DenseChannel(indexes.dense, self.core.query_vectors, cfg))
        if mode != "dense":
            channels.append(KeywordChannel(indexes.keyword, cfg))
        found = [c.search(query, k, allowed, hidden, len(channels) == 1) for c in channels]
        fused, floor = fuse(found, cfg.fusion, cfg.rrf_k)

        def visible(pk: int) -> bool:
            return pk not in hidden and (allowed is None or pk in allowed)

        layout = indexes.layout
        fused = smooth(fused, floor, layout, cfg.neighbour_weight, cfg.neighbour_radius, visible)
        fused = self._hinted(cfg, fused, layout, query, now)
        dense = found[0].hits if mode != "keyword" else []
        lexical = found[-1].hits if mode != "dense" else []
        return self._rank(cfg, cube, fused, ranks(dense), ranks(lexical), k, now)

    def _hinted(
        self,
        cfg: SearchConfig,
        fused: dict[int, float],
        layout: CubeLayout,
        query: str,
        now: datetime,
    ) -> dict[int, float]:
        """Add the bonuses of the speaker and the period the query names."""
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

    def _rank(
        self,
        cfg: SearchConfig,
        cube: CubeRef,
        fused: dict[int, float],
        d_rank: dict[int, tuple[int, float]],
        k_rank: dict[int, tuple[int, float]],
        k: int,
        now: datetime,
    ) -> list[SearchHit]:
        """The top ``k``: fused scores scaled so the best is 1, blended with retention."""
        fused = _scaled(fused, cfg.fusion)
        w = cfg.retention_weight
        tie = {pk: -d_rank.get(pk, (0, -1.0))[1] for pk in fused}  # the closer in meaning first
        if w:
            # One read: the full rows of every candidate that can still make the
            # top k carry the figures retention needs.
            records = self._hydrate(cube, _contenders(fused, k, w))
            retention = self._retention(records, now)
        else:
            # Without retention the order is known already: load only the top k.
            records = self._hydrate(cube, sorted(fused, key=lambda pk: (-fused[pk], tie[pk]))[:k])
            retention = {}
        final = {pk: (1 - w) * fused[pk] + w * retention.get(pk, 0.0) for pk in records}
        hits = []
        for pk in sorted(final, key=lambda pk: (-final[pk], tie[pk]))[:k]:
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


def _scaled(fused: dict[int, float], fusion: str) -> dict[int, float]:
    """Fused scores with the best candidate at 1 (normalized and lifted scores are
    unbounded; reciprocal ranks already are at most 1 unless a bonus lifted them)."""
    top = max(fused.values(), default=1.0)
    if fusion == "rrf" and top <= 1:
        return fused
    if top > 1e-12:
        return {pk: f / top for pk, f in fused.items()}
    # every candidate below the cube's mean (tiny cubes): shift, keep the order
    return {pk: f - top + 1.0 for pk, f in fused.items()}


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
