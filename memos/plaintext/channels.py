"""The channels of a hybrid search, as objects the retriever runs alike.

A channel fetches its best candidates among the items a search may return,
with the mean and spread of the query's score over the whole cube (what z-score
fusion standardizes with), and says how much it weighs for this query:

- :class:`DenseChannel`: the query embedding against the cube's FAISS index.
  An item it did not return scores at most its weakest hit (its floor).
- :class:`KeywordChannel`: BM25 over the cube's keyword keys. An item it did not
  return scores 0. In score fusion its weight follows its evidence for the query
  (``keyword_evidence``): the share of the query's IDF mass its best hit holds,
  so a query whose words match nothing specific leans on the dense channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # the indexes load FAISS and numpy: not at import time
    from memos.config import SearchConfig
    from memos.plaintext.dense_index import DenseIndex
    from memos.plaintext.embedder import QueryVectors
    from memos.plaintext.keyword import KeywordIndex

Hits = list[tuple[int, float]]

#: How many of the keyword channel's best hits its evidence is read from (on
#: the LoCoMo dev split, the best three gave the same recall as the best one).
EVIDENCE_HITS = 1


@dataclass(frozen=True)
class Found:
    """What one channel found for a query.

    Attributes:
        hits: (item pk, raw score) pairs, best first.
        stats: mean and standard deviation of the query's raw score over the cube.
        floor_raw: the raw score of an item not returned (``None``: the weakest hit's).
        weight: the channel's weight in the fusion, for this query.
    """

    hits: Hits
    stats: tuple[float, float]
    floor_raw: float | None
    weight: float


class Channel(Protocol):
    """One way of ranking a cube's items for a query."""

    def search(
        self, query: str, k: int, allowed: set[int] | None, hidden: set[int], alone: bool
    ) -> Found:
        """The channel's candidates for a search for the top ``k``.

        Args:
            allowed: the pks the filter allows (``None``: every item).
            hidden: pks never returned (archived and forgotten items, which the
                plain filter skips): over-fetched, then dropped.
            alone: the only channel of the search (its weight is then 1).
        """
        ...


def _visible(hits: Hits, hidden: set[int], depth: int) -> Hits:
    return [(pk, s) for pk, s in hits if pk not in hidden][:depth]


class DenseChannel:
    """The query embedding against the cube's dense index."""

    def __init__(self, index: DenseIndex, vectors: QueryVectors, config: SearchConfig) -> None:
        self.index, self.vectors, self.config = index, vectors, config

    def search(
        self, query: str, k: int, allowed: set[int] | None, hidden: set[int], alone: bool
    ) -> Found:
        depth = max(self.config.candidates, k)
        vector = self.vectors.vector(query)  # [dim]
        hits = _visible(self.index.search(vector, depth + len(hidden), allowed), hidden, depth)
        stats = self.index.score_stats(vector) if self.config.fusion == "zscore" else (0.0, 0.0)
        return Found(hits, stats, None, 1.0 if alone else self.config.dense_weight)


class KeywordChannel:
    """BM25 over the cube's keyword keys."""

    def __init__(self, index: KeywordIndex, config: SearchConfig) -> None:
        self.index, self.config = index, config

    def search(
        self, query: str, k: int, allowed: set[int] | None, hidden: set[int], alone: bool
    ) -> Found:
        depth = max(self.config.keyword_candidates, k)
        raw, stats = self.index.search_with_stats(query, depth + len(hidden), allowed)
        hits = _visible(raw, hidden, depth)
        return Found(hits, stats, 0.0, 1.0 if alone else self._weight(query, hits))

    def _weight(self, query: str, hits: Hits) -> float:
        cfg = self.config
        if not cfg.keyword_evidence or not hits or cfg.fusion == "rrf":
            return cfg.keyword_weight
        share = self.index.coverage(query, [pk for pk, _ in hits[:EVIDENCE_HITS]])
        return float(cfg.keyword_weight * share**cfg.keyword_evidence)
