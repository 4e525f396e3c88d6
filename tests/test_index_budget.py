"""Cube indexes stay within their memory budget: with ten times more cubes than
fit, the least recently used are evicted and come back, correct, when used."""

from __future__ import annotations

from pathlib import Path

from helpers import open_memos

CUBES, ITEMS, FIT = 30, 120, 3


def test_ten_times_more_cubes_than_fit_stay_within_the_budget(tmp_path: Path) -> None:
    mem = open_memos(tmp_path / "home")
    for n in range(CUBES):
        mem.add_many(
            [f"cube {n} holds fact {i} about the harbour" for i in range(ITEMS)], cube=f"c{n}"
        )
    mem.close()
    probe = open_memos(tmp_path / "home")
    probe.search("harbour", cube="c0")
    per_cube = probe.indexes.memory_bytes()
    probe.close()
    budget_mb = FIT * per_cube / 2**20
    mem = open_memos(tmp_path / "home", index_cache_mb=budget_mb)
    for n in range(CUBES):
        hits = mem.search(f"cube {n} fact 7", cube=f"c{n}", k=1)
        assert hits[0].item.text == f"cube {n} holds fact 7 about the harbour"
        assert mem.indexes.memory_bytes() <= budget_mb * 2**20
    assert mem.indexes.evictions >= CUBES - FIT
    # an evicted cube comes back whole, with a change made while it was out
    mem.add("cube 0 holds a late fact about the lighthouse", cube="c0")
    for n in range(1, 1 + FIT):
        mem.search("harbour", cube=f"c{n}")
    assert mem.indexes.loaded(mem.core.cube("c0").pk) is None
    assert mem.search("late fact lighthouse", cube="c0", k=1)[0].item.text.endswith("lighthouse")
    assert len(mem.indexes.get(mem.core.cube("c0"))) == ITEMS + 1
    mem.close()
