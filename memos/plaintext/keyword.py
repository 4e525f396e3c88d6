"""The keyword channel: an in-memory Okapi BM25 index of one cube.

Derived like the dense index: built from the database's texts, caught up by
the cube's revision, never the source of truth (so it is not persisted; a
100k-item cube rebuilds in about a second). It scores only the postings of
the query's terms, vectorized with numpy, so a search costs a few
milliseconds at 100k items where the database's full-text search scored
every match. Items keep a label; updates add a new label and retire the old
one, and the index compacts itself when too much of it is retired.

BM25 (k1 = 1.2, b = 0.75), with idf = ln(1 + (N - df + 0.5) / (df + 0.5)).
Text is lower-cased and split on word characters; stop words are dropped; with
``stem`` each word is reduced to its Snowball English stem, so "painting" and
"paints" meet "paint" (on the LoCoMo dev split this lifts evidence recall@10 of
the full pipeline by 1.8 points).
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

import numpy as np

K1, B = 1.2, 0.75
_WORD = re.compile(r"\w+", re.UNICODE)
_MAX_QUERY_TERMS = 32
_COMPACT_MIN_DEAD = 256
# Words too common to help ranking.
STOPWORDS = frozenset(
    """
    a about above after again all am an and any are as at be been before being below
    between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in
    into is it its itself just me more most my myself no nor not now of off on once only
    or other our ours ourselves out over own same she should so some such than that the
    their theirs them themselves then there these they this those through to too under
    until up very was we were what when where which while who whom why will with would
    you your yours yourself yourselves
    """.split()
)


def tokens(text: str) -> list[str]:
    """Content words of ``text``, lower-cased, in order (stop words dropped)."""
    return [
        w for w in _WORD.findall(text.lower()) if w not in STOPWORDS and (len(w) > 1 or w.isdigit())
    ]


def stemmed_tokens(text: str) -> list[str]:
    """:func:`tokens` reduced to their Snowball English stems."""
    return [_stem(w) for w in tokens(text)]


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    return str(_stemmer().stemWord(word))


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    import snowballstemmer

    return snowballstemmer.stemmer("english")


def query_terms(query: str, analyze: Callable[[str], list[str]] = tokens) -> list[str]:
    """Distinct content words of a query (at most 32)."""
    return list(dict.fromkeys(analyze(query)))[:_MAX_QUERY_TERMS]


class KeywordIndex:
    """BM25 over item texts, with a label → item-pk map like the dense index.

    Args:
        stem: index and query word stems instead of words.
    """

    def __init__(self, stem: bool = False) -> None:
        self.lock = threading.RLock()
        self.revision = 0
        self.analyze = stemmed_tokens if stem else tokens
        self._reset()

    def _reset(self) -> None:
        self._label_pk: list[int] = []
        self._alive: list[bool] = []
        self._doc_len: list[int] = []
        self._doc_terms: list[Counter[str]] = []
        self._pk_label: dict[int, int] = {}
        self._postings: dict[str, tuple[list[int], list[int]]] = {}  # term → (labels, tfs)
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._df: Counter[str] = Counter()
        self._total_len = 0
        self._cache: dict[str, np.ndarray] = {}  # per-label arrays, rebuilt after changes

    def __len__(self) -> int:
        return len(self._pk_label)

    def pks(self) -> set[int]:
        return set(self._pk_label)

    def upsert(self, docs: Iterable[tuple[int, str]]) -> None:
        """Add or replace the texts of items ``(pk, text)``."""
        with self.lock:
            for pk, text in docs:
                self._add(pk, Counter(self.analyze(text)))
            self._cache.clear()

    def _add(self, pk: int, counts: Counter[str]) -> None:
        self._kill(pk)
        label = len(self._label_pk)
        self._label_pk.append(pk)
        self._alive.append(True)
        self._doc_len.append(sum(counts.values()))
        self._doc_terms.append(counts)
        self._pk_label[pk] = label
        self._total_len += self._doc_len[-1]
        for term, tf in counts.items():
            labels, tfs = self._postings.setdefault(term, ([], []))
            labels.append(label)
            tfs.append(tf)
            self._df[term] += 1
            self._arrays.pop(term, None)

    def remove(self, pks: Iterable[int]) -> None:
        """Forget items ``pks`` (unknown ones are ignored)."""
        with self.lock:
            for pk in pks:
                self._kill(pk)
            dead = len(self._label_pk) - len(self._pk_label)
            if dead >= _COMPACT_MIN_DEAD and dead > len(self._pk_label) // 3:
                self._compact()

    def _kill(self, pk: int) -> None:
        label = self._pk_label.pop(pk, None)
        if label is None:
            return
        self._alive[label] = False
        self._cache.clear()
        self._total_len -= self._doc_len[label]
        for term in self._doc_terms[label]:
            self._df[term] -= 1

    def _compact(self) -> None:
        live = [(self._label_pk[i], self._doc_terms[i]) for i, ok in enumerate(self._alive) if ok]
        self._reset()
        for pk, counts in live:
            self._add(pk, counts)
        self._cache.clear()

    def search(
        self, query: str, k: int, allowed: Iterable[int] | None = None
    ) -> list[tuple[int, float]]:
        """Best ``k`` (item pk, BM25 score) pairs, restricted to ``allowed`` pks if given."""
        return self.search_with_stats(query, k, allowed)[0]

    def search_with_stats(
        self, query: str, k: int, allowed: Iterable[int] | None = None
    ) -> tuple[list[tuple[int, float]], tuple[float, float]]:
        """:meth:`search`, with the mean and standard deviation of the query's
        BM25 score over every live item (unmatched ones score 0)."""
        with self.lock:
            n_docs = len(self._pk_label)
            terms = [t for t in query_terms(query, self.analyze) if self._df.get(t, 0) > 0]
            if not n_docs or not terms or k <= 0:
                return [], (0.0, 0.0)
            scores = np.zeros(len(self._label_pk), dtype=np.float32)  # [labels]
            norm = self._norm(n_docs)  # [labels]
            for term in terms:
                idf = _idf(n_docs, self._df[term])
                labels, tfs = self._term_arrays(term)
                scores[labels] += idf * tfs * (K1 + 1) / (tfs + norm[labels])
            mask = self._alive_mask()
            live = scores[mask]
            stats = (float(live.mean()), float(live.std()))
            if allowed is not None:
                keep = np.zeros_like(mask)
                chosen = [self._pk_label[pk] for pk in allowed if pk in self._pk_label]
                keep[np.asarray(chosen, dtype=np.int64)] = True
                mask &= keep
            candidates = np.flatnonzero((scores > 0) & mask)
            if candidates.size > k:
                candidates = candidates[np.argpartition(-scores[candidates], k - 1)[:k]]
            order = candidates[np.argsort(-scores[candidates], kind="stable")]
            return [(self._label_pk[i], float(scores[i])) for i in order], stats

    def coverage(self, query: str, pks: Iterable[int]) -> float:
        """The largest share of the query's IDF mass that one of ``pks`` holds
        (0..1): how specifically the keyword channel's best hits match the query.

        A query word no item has counts with the largest IDF: the channel has
        nothing for it, so it lowers the share.
        """
        with self.lock:
            n_docs = len(self._pk_label)
            terms = query_terms(query, self.analyze)
            if not n_docs or not terms:
                return 0.0
            idf = {t: _idf(n_docs, self._df.get(t, 0)) for t in terms}
            total = sum(idf.values())
            best = 0.0
            for pk in pks:
                label = self._pk_label.get(pk)
                if label is not None:
                    held = self._doc_terms[label]
                    best = max(best, sum(w for t, w in idf.items() if t in held))
            return best / total if total > 0 else 0.0

    def _norm(self, n_docs: int) -> np.ndarray:
        """``k1 * (1 - b + b * len / avg_len)`` per label."""
        if "norm" not in self._cache:
            lengths = np.asarray(self._doc_len, dtype=np.float32)
            self._cache["norm"] = K1 * (1 - B + B * lengths / (self._total_len / n_docs))
        return self._cache["norm"]

    def _alive_mask(self) -> np.ndarray:
        if "alive" not in self._cache:
            self._cache["alive"] = np.asarray(self._alive, dtype=bool)
        return self._cache["alive"].copy()

    def _term_arrays(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        cached = self._arrays.get(term)
        if cached is None:
            labels, tfs = self._postings[term]
            cached = (np.asarray(labels, dtype=np.int64), np.asarray(tfs, dtype=np.float32))
            self._arrays[term] = cached
        return cached


def _idf(n_docs: int, df: int) -> float:
    """BM25's inverse document frequency of a term held by ``df`` of ``n_docs`` items."""
    return math.log(1 + (n_docs - df + 0.5) / (df + 0.5))
