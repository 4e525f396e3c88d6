"""The BM25 keyword index against a direct computation of the formula."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from memos.plaintext.keyword import K1, B, KeywordIndex, query_terms, tokens

WORDS = "apple banana cherry date elder fig grape honey iris jade kiwi lemon mango".split()


def _corpus(n: int, seed: int) -> dict[int, str]:
    rng = np.random.default_rng(seed)
    return {
        pk: " ".join(WORDS[i] for i in rng.integers(0, len(WORDS), rng.integers(1, 12)))
        for pk in range(1000, 1000 + n)
    }


def _bm25(docs: dict[int, str], query: str) -> dict[int, float]:
    counted = {pk: Counter(tokens(text)) for pk, text in docs.items()}
    avg = sum(sum(c.values()) for c in counted.values()) / len(counted)
    scores: dict[int, float] = {}
    for term in query_terms(query):
        df = sum(1 for c in counted.values() if term in c)
        if not df:
            continue
        idf = math.log(1 + (len(docs) - df + 0.5) / (df + 0.5))
        for pk, c in counted.items():
            tf = c.get(term, 0)
            if tf:
                length = sum(c.values())
                scores[pk] = scores.get(pk, 0.0) + idf * tf * (K1 + 1) / (
                    tf + K1 * (1 - B + B * length / avg)
                )
    return scores


def _check(index: KeywordIndex, docs: dict[int, str], query: str, k: int = 10) -> None:
    want = sorted(_bm25(docs, query).items(), key=lambda kv: (-kv[1], kv[0]))[:k]
    got = index.search(query, k)
    np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=1e-5)
    # ties may order differently; the score sets and the pk sets at distinct scores agree
    assert {pk for pk, s in got if s > want[-1][1] + 1e-4} == {
        pk for pk, s in want if s > want[-1][1] + 1e-4
    }


@pytest.mark.parametrize(("n", "seed"), [(1, 0), (9, 1), (300, 2), (2000, 3)])
def test_matches_the_formula(n: int, seed: int) -> None:
    docs = _corpus(n, seed)
    index = KeywordIndex()
    index.upsert(docs.items())
    for query in ("apple", "banana cherry", "the kiwi and the mango", "zebra"):
        _check(index, docs, query)


def test_updates_removals_and_compaction() -> None:
    docs = _corpus(1200, 4)
    index = KeywordIndex()
    index.upsert(docs.items())
    changed = _corpus(400, 5)
    moved = {pk: changed[pk] for pk in list(changed)[:400]}
    index.upsert(moved.items())
    docs.update(moved)
    removed = list(docs)[::2]
    index.remove(removed)
    for pk in removed:
        docs.pop(pk)
    assert len(index) == len(docs) and index.pks() == set(docs)
    _check(index, docs, "apple fig")
    _check(index, docs, "lemon")


def test_allowed_subset() -> None:
    docs = _corpus(500, 6)
    index = KeywordIndex()
    index.upsert(docs.items())
    allowed = set(list(docs)[::7])
    got = index.search("grape honey", 50, allowed)
    assert got and {pk for pk, _ in got} <= allowed


def test_stopwords_and_empty_queries() -> None:
    index = KeywordIndex()
    index.upsert([(1, "the cat sat on the mat"), (2, "a dog")])
    assert index.search("the and of", 5) == []
    assert [pk for pk, _ in index.search("cat", 5)] == [1]
