"""JSONL export and import: a lossless round trip, and all-or-nothing on bad files."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path

import pytest
from helpers import open_memos

from memos import ImportFormatError
from memos.client import Memos


def test_round_trip_is_lossless(mem: Memos, tmp_path: Path) -> None:
    a = mem.add(
        "Alice likes tea",
        tags=["t"],
        metadata={"k": [1, 2]},
        user_id="alice",
        event_time=mem.clock.now() - timedelta(days=2),
        pinned=True,
        trust=0.7,
    )
    mem.update(a.id, "Alice likes coffee", reason="changed her mind")
    gone = mem.add("to be deleted", cube="other")
    mem.delete(gone.id)
    mem.add_messages([{"role": "user", "name": "Bo", "content": "hello there"}], cube="other")
    path = tmp_path / "out.jsonl"
    assert mem.export_jsonl(path) == 3

    fresh = open_memos(tmp_path / "fresh")
    report = fresh.import_jsonl(path)
    assert (report.imported, report.skipped, report.versions) == (3, 0, 4)
    assert sorted(report.cubes) == ["default", "other"]
    for item_id in (a.id, gone.id):
        assert fresh.get(item_id) == mem.get(item_id)
        assert fresh.history(item_id) == mem.history(item_id)
    assert fresh.search("coffee")[0].item.id == a.id
    assert all(h.item.id != gone.id for h in fresh.search("to be deleted", cube="other"))
    again = fresh.import_jsonl(path)
    assert (again.imported, again.skipped) == (0, 3)
    second = tmp_path / "again.jsonl"
    fresh.export_jsonl(second)
    assert path.read_text() == second.read_text()
    fresh.close()


@pytest.mark.parametrize(
    "damage",
    ["not json", "header", "hash", "state", "text", "empty"],
)
def test_bad_import_stores_nothing(mem: Memos, tmp_path: Path, damage: str) -> None:
    mem.add_many(["one", "two"])
    buffer = io.StringIO()
    mem.export_jsonl(buffer)
    lines = buffer.getvalue().splitlines()
    item = json.loads(lines[2])
    if damage == "not json":
        lines[2] = "{broken"
    elif damage == "header":
        lines[0] = json.dumps({"something": "else"})
    elif damage == "hash":
        item["content_hash"] = "0" * 64
        lines[2] = json.dumps(item)
    elif damage == "state":
        item["state"] = "zombie"
        lines[2] = json.dumps(item)
    elif damage == "text":
        item["text"] = ""
        lines[2] = json.dumps(item)
    else:
        lines = []
    target = open_memos(tmp_path / "t")
    with pytest.raises(ImportFormatError):
        target.import_jsonl(io.StringIO("\n".join(lines)))
    assert target.cubes() == []
    target.close()
