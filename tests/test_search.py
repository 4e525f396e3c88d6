"""Hybrid search, filters, and the dense index staying in step with the database."""

from __future__ import annotations

import itertools
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from helpers import open_memos

from memos.client import Memos
from memos.errors import IndexRebuiltWarning, InvalidFilterError

FACTS = [
    "Alice drinks green tea every morning",
    "Bob plays the cello in an orchestra",
    "The quarterly report is due on Friday",
    "Alice adopted a cat named Miso",
    "Bob's favourite city is Lisbon",
]


def test_hybrid_hits_carry_score_parts(mem: Memos) -> None:
    mem.add_many(FACTS)
    hits = mem.search("Alice tea", k=3)
    top = hits[0]
    assert top.item.text == FACTS[0]
    assert top.parts.dense_rank == 1 and top.parts.keyword_rank == 1
    assert top.parts.dense is not None and top.parts.keyword is not None
    assert top.score == pytest.approx(1.0) and top.parts.final == top.score
    assert all(a.score >= b.score for a, b in itertools.pairwise(hits))


def test_modes(mem: Memos) -> None:
    mem.add_many(FACTS)
    dense = mem.search("cello orchestra", mode="dense", k=2)
    assert all(h.parts.keyword is None for h in dense)
    keyword = mem.search("cello", mode="keyword", k=5)
    assert [h.item.text for h in keyword] == [FACTS[1]]
    assert all(h.parts.dense is None for h in keyword)


def test_filters(mem: Memos) -> None:
    base = datetime(2024, 1, 1, tzinfo=timezone.utc)
    mem.add_many(
        [
            {
                "text": "alpha note one",
                "user_id": "u1",
                "tags": ["a", "b"],
                "metadata": {"n": 1},
                "event_time": base,
            },
            {
                "text": "alpha note two",
                "user_id": "u2",
                "tags": ["a"],
                "metadata": {"n": 2, "ok": True},
                "event_time": base + timedelta(days=10),
            },
            {
                "text": "alpha note three",
                "user_id": "u1",
                "tags": ["b"],
                "metadata": {"kind": "x"},
                "event_time": base + timedelta(days=20),
            },
        ]
    )

    def texts(flt: dict) -> set[str]:
        return {h.item.text for h in mem.search("alpha note", k=10, filter=flt)}

    assert texts({"user_id": "u1"}) == {"alpha note one", "alpha note three"}
    assert texts({"tags": ["a", "b"]}) == {"alpha note one"}
    assert texts({"tags": ["a"]}) == {"alpha note one", "alpha note two"}
    assert texts({"metadata": {"n": 2}}) == {"alpha note two"}
    assert texts({"metadata": {"ok": True}}) == {"alpha note two"}
    assert texts({"metadata": {"kind": "x"}}) == {"alpha note three"}
    assert texts({"since": base + timedelta(days=5)}) == {"alpha note two", "alpha note three"}
    assert texts({"until": "2024-01-05"}) == {"alpha note one"}
    assert texts({"states": ["archived"]}) == set()
    one = next(h.item.id for h in mem.search("alpha note one", k=1))
    assert texts({"exclude_ids": [one]}) == {"alpha note two", "alpha note three"}
    with pytest.raises(InvalidFilterError, match="exclude_ids"):
        texts({"exclude_ids": [""]})
    for mode in ("dense", "keyword"):
        hits = mem.search("alpha note", k=10, filter={"user_id": "u2"}, mode=mode)
        assert {h.item.text for h in hits} == {"alpha note two"}


def test_second_instance_sees_changes_through_revision(tmp_path: Path) -> None:
    """Two instances on one database stand in for two processes."""
    a, b = open_memos(tmp_path / "h"), open_memos(tmp_path / "h")
    try:
        a.add_many(FACTS)
        assert b.search("cello", k=1)[0].item.text == FACTS[1]
        record = a.add("Carol sails on weekends")
        assert b.search("Carol sails", k=1)[0].item.id == record.id
        a.update(record.id, "Carol rows on weekends")
        assert b.search("Carol rows", k=1)[0].item.text == "Carol rows on weekends"
        a.delete(record.id)
        assert all(h.item.id != record.id for h in b.search("Carol", k=10))
        victim = b.search("cello", k=1)[0].item.id
        a.purge(victim)
        assert all(h.item.id != victim for h in b.search("cello orchestra", k=10))
        assert len(b.indexes.get(b.core.cube("default"))) == len(FACTS) - 1
    finally:
        a.close()
        b.close()


def _index_file(mem: Memos) -> Path:
    return mem.indexes.path(mem.core.cube("default").id)


def test_index_file_is_reused_then_caught_up(tmp_path: Path) -> None:
    first = open_memos(tmp_path / "h")
    first.add_many(FACTS)
    first.search("cello", k=1)  # indexes load lazily, on the first search
    first.close()
    assert _index_file(first).exists()
    second = open_memos(tmp_path / "h")
    second.add("Dave collects stamps")
    second.close()
    third = open_memos(tmp_path / "h")
    with warnings.catch_warnings():
        warnings.simplefilter("error", IndexRebuiltWarning)
        assert third.search("stamps", k=1)[0].item.text == "Dave collects stamps"
    third.close()


@pytest.mark.parametrize("damage", ["delete", "truncate", "garbage"])
def test_missing_or_corrupt_index_is_rebuilt(tmp_path: Path, damage: str) -> None:
    first = open_memos(tmp_path / "h")
    first.add_many(FACTS)
    first.search("cello", k=1)
    first.close()
    path = _index_file(first)
    if damage == "delete":
        path.unlink()
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:100])
    else:
        path.write_bytes(b"\x00garbage")
    second = open_memos(tmp_path / "h")
    with pytest.warns(IndexRebuiltWarning):
        hits = second.search("cello", k=1)
    assert hits[0].item.text == FACTS[1]
    assert second.stats().items == len(FACTS)
    second.close()


def test_rebuild_index_and_hnsw(tmp_path: Path) -> None:
    mem = open_memos(tmp_path / "h", index_kind="hnsw")
    mem.add_many([f"item about topic {i}" for i in range(300)] + FACTS)
    assert mem.rebuild_index() == 305
    assert mem.search("cello orchestra", k=1)[0].item.text == FACTS[1]
    mem.close()


def test_embeddings_are_not_recomputed(mem: Memos) -> None:
    embedder = mem.embedder
    mem.add_many(FACTS)
    seen = embedder.texts_seen  # type: ignore[attr-defined]
    mem.add_many(FACTS)
    record = mem.add(FACTS[0], cube="elsewhere")
    assert embedder.texts_seen == seen  # type: ignore[attr-defined]
    assert record.cube == "elsewhere"
    mem.rebuild_index()
    assert embedder.texts_seen == seen  # type: ignore[attr-defined]


def test_bulk_add_reports_progress(mem: Memos) -> None:
    seen: list[tuple[int, int]] = []
    mem.add_many([f"line {i}" for i in range(600)], progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (600, 600)
    assert all(t == 600 for _, t in seen)


def test_context_respects_budget(mem: Memos) -> None:
    mem.add_many(FACTS)
    block = mem.context("Alice", budget_tokens=30)
    assert block.tokens <= 30 and block.items
    assert block.text.startswith("Relevant memories")
    # the block is the best hits in rank order, as many as fit the budget
    best = [hit.item.text for hit in mem.search("Alice", k=len(block.items))]
    assert [item.text for item in block.items] == best
    assert all(text.startswith("Alice") for text in best)
    assert block.text.endswith(best[-1])
    assert mem.context("zzzz qqqq", budget_tokens=5).text == ""


def test_threads_share_one_instance(mem: Memos) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def work(n: int) -> int:
        for i in range(10):
            mem.add(f"thread {n} fact {i}")
            mem.search(f"thread {n}", k=3)
        return n

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(work, range(4)))
    assert mem.stats().items == 40
    assert len(mem.indexes.get(mem.core.cube("default"))) == 40


def test_archived_items_are_hidden_unless_asked(mem: Memos) -> None:
    from sqlalchemy import update

    from memos import store
    from memos.store.models import Item

    records = mem.add_many(FACTS)
    mem.search("warm up the indexes")
    target = records[1]

    def archive(session):  # type: ignore[no-untyped-def]
        revision = store.bump_revision(session, mem.core.cube("default").pk)
        session.execute(
            update(Item).where(Item.id == target.id).values(state="archived", change_seq=revision)
        )

    mem.db.write(archive)
    for mode in ("hybrid", "dense", "keyword"):
        assert all(h.item.id != target.id for h in mem.search("cello orchestra", mode=mode))
    asked = mem.search("cello orchestra", filter={"states": ["archived"]})
    assert [h.item.id for h in asked] == [target.id]
