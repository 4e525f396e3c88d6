"""Recall accounting, decay, restore and retention in ranking, on simulated time."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from helpers import open_memos
from sqlalchemy import select

from memos import Memos
from memos.clock import ManualClock
from memos.errors import UnknownItemError
from memos.store.models import Event

DAY = timedelta(days=1)


def clock_of(mem: Memos) -> ManualClock:
    assert isinstance(mem.clock, ManualClock)
    return mem.clock


def events(mem: Memos, kind: str, item_id: str | None = None) -> list[Event]:
    with mem.db.read() as session:
        stmt = select(Event).where(Event.kind == kind)
        if item_id is not None:
            stmt = stmt.where(Event.item_id == item_id)
        return list(session.scalars(stmt.order_by(Event.pk)))


def test_recalled_at_growing_intervals_stays_active_for_60_days(mem: Memos) -> None:
    kept = mem.add("the launch code of the orbital station is 4417")
    unused = mem.add("the canteen serves lentil soup on tuesdays")
    recall_days = {3, 8, 16, 29, 50}  # intervals 3, 5, 8, 13, 21
    states = []
    for day in range(1, 61):
        clock_of(mem).advance(DAY)
        if day == 3:
            block = mem.context("orbital station launch code", budget_tokens=30)
            assert [i.id for i in block.items] == [kept.id]
        elif day in recall_days:
            mem.mark_used([kept.id])
        mem.decay()
        states.append(mem.get(kept.id).state)
    assert states == ["active"] * 60
    final = mem.get(kept.id)
    assert final.access_count == len(recall_days)
    assert final.stability > 60  # 7 days grown by five well-spaced recalls
    assert mem.get(unused.id).state == "forgotten"
    recalls = events(mem, "recall", kept.id)
    assert len(recalls) == 5
    assert all(0.6 < e.details["retention"] < 0.7 for e in recalls)  # each came "late"


def test_unused_item_is_archived_then_forgotten_then_restorable(mem: Memos) -> None:
    item = mem.add("the spare key is under the blue flowerpot")
    seen = {}
    for day in (5, 10, 20, 40):
        clock_of(mem).set(item.created_at + day * DAY)
        mem.decay()
        seen[day] = mem.get(item.id).state
    assert seen == {5: "warm", 10: "cold", 20: "archived", 40: "forgotten"}
    assert mem.search("spare key flowerpot") == []
    hidden = mem.search("spare key flowerpot", filter={"states": ["forgotten"]})
    assert [h.item.id for h in hidden] == [item.id]
    moves = [(e.details["from"], e.details["to"]) for e in events(mem, "state", item.id)]
    assert moves == [("active", "warm"), ("warm", "cold"), ("cold", "archived")]
    (forget,) = events(mem, "forget", item.id)
    assert forget.reason == "decay" and forget.details["retention"] < 0.01

    restored = mem.restore(item.id)
    assert restored.state == "active"
    assert [h.item.id for h in mem.search("spare key flowerpot")] == [item.id]
    assert mem.decay() == []  # restored counts as fresh: nothing decays at once
    assert mem.get(item.id).text == item.text


def test_pinned_item_never_decays(mem: Memos) -> None:
    pinned = mem.add("my blood type is O negative", pinned=True)
    clock_of(mem).advance(400 * DAY)
    changes = mem.decay()
    assert pinned.id not in {c.item_id for c in changes}
    assert mem.get(pinned.id).state == "active"
    assert mem.retention(pinned.id) == 1.0


def test_ranking_prefers_the_fresher_of_two_equally_similar_items(tmp_path: Path) -> None:
    for fresher in (0, 1):
        mem = open_memos(tmp_path / f"h{fresher}", retention_weight=0.2)
        a = mem.add("the cat sat on the warm mat")
        b = mem.add("the Cat sat on the warm mat")  # same words: same similarity
        clock_of(mem).advance(10 * DAY)
        mem.mark_used([(a, b)[fresher].id])
        clock_of(mem).advance(DAY)
        hits = mem.search("cat on the mat", k=2)
        assert hits[0].parts.fused == hits[1].parts.fused
        assert hits[0].item.id == (a, b)[fresher].id
        assert hits[0].parts.retention > hits[1].parts.retention
        mem.close()


def test_context_counts_as_recall_but_search_does_not(mem: Memos) -> None:
    item = mem.add("the wifi password is hunter2")
    mem.search("wifi password")
    assert mem.get(item.id).access_count == 0
    mem.context("wifi password")
    assert mem.core.recalls.pending() == 1  # buffered, not written on the read path
    assert mem.get(item.id).access_count == 1  # reads flush first
    assert mem.core.recalls.pending() == 0
    with pytest.raises(UnknownItemError):
        mem.mark_used(["no-such-id"])


def test_recall_reactivates_a_cold_item(mem: Memos) -> None:
    item = mem.add("the boiler is serviced every october")
    clock_of(mem).advance(12 * DAY)
    mem.decay()
    assert mem.get(item.id).state == "cold"
    mem.mark_used([item.id])
    again = mem.get(item.id)
    assert again.state == "active" and again.stability > 7
    assert events(mem, "state", item.id)[-1].reason == "recalled"


def test_adding_a_forgotten_text_again_brings_it_back(mem: Memos) -> None:
    item = mem.add("the bakery opens at seven")
    clock_of(mem).advance(60 * DAY)
    mem.decay()
    assert mem.get(item.id).state == "forgotten"
    again = mem.add("the bakery opens at seven")
    assert again.id == item.id and again.state == "active"
    assert [h.item.id for h in mem.search("bakery opens")] == [item.id]


def test_decay_dry_run_writes_nothing_and_importance_slows_decay(mem: Memos) -> None:
    plain = mem.add("the plumber's number ends in 42")
    vital = mem.add("the dog is allergic to chicken", importance=1.0)
    assert mem.get(vital.id).stability == 35
    clock_of(mem).advance(10 * DAY)
    planned = mem.decay(dry_run=True)
    assert {(c.item_id, c.new) for c in planned} == {(plain.id, "cold")}
    assert mem.get(plain.id).state == "active"
    assert mem.decay() == planned
    assert mem.get(plain.id).state == "cold"
    assert mem.get(vital.id).state == "active"


def test_recall_accounting_survives_close_and_other_processes(tmp_path: Path) -> None:
    first = open_memos(tmp_path / "h")
    item = first.add("the meeting moved to thursday")
    first.context("meeting thursday")
    first.close()  # writes what is buffered
    second = open_memos(tmp_path / "h")
    assert second.get(item.id).access_count == 1
    second.close()


def test_lifecycle_on_each_database(any_mem: Memos) -> None:
    item = any_mem.add("the storage unit is number 118")
    clock_of(any_mem).advance(20 * DAY)
    assert [c.new for c in any_mem.decay()] == ["archived"]
    assert any_mem.search("storage unit") == []
    any_mem.mark_used([item.id])
    assert any_mem.get(item.id).state == "active"
    assert [h.item.id for h in any_mem.search("storage unit")] == [item.id]
    clock_of(any_mem).advance(120 * DAY)  # the late recall tripled S
    any_mem.decay()
    assert any_mem.get(item.id).state == "forgotten"
    assert any_mem.restore(item.id).state == "active"


def test_recalls_are_written_at_exit_without_close(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from pathlib import Path\n"
        "from helpers import open_memos\n"
        "mem = open_memos(Path(sys.argv[2]))\n"
        "item = mem.add('the spare key is under the mat')\n"
        "mem.context('spare key')\n"
        "print(item.id)\n"  # exits without close()
    )
    tests = str(Path(__file__).parent)
    out = subprocess.run(
        [sys.executable, "-c", script, tests, str(tmp_path / "h")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    mem = open_memos(tmp_path / "h")
    assert mem.get(out.stdout.strip()).access_count == 1
    mem.close()
