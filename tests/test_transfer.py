"""JSONL export and import: a lossless round trip, and all-or-nothing on bad files."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from helpers import open_memos

from memos import ImportFormatError, PathError
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


def _home_files(home: Path) -> dict[str, bytes]:
    return {str(p.relative_to(home)): p.read_bytes() for p in home.rglob("*") if p.is_file()}


def test_export_refuses_every_file_of_the_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    mem = open_memos(home)
    mem.add_many(["one", "two"])
    mem.search("one")
    mem.close()
    outside = tmp_path / "link.jsonl"
    outside.symlink_to(home / "memos.db")
    index = next((home / "indexes").rglob("*.safetensors"))
    (home / "kv").mkdir()
    mem = open_memos(home)
    mem.search("one")
    before = _home_files(home)
    targets = [home / "memos.db", home / "memos.db-wal", index, home / "kv" / "x.st", home]
    for target in [*targets, outside, home / "new.jsonl"]:
        with pytest.raises(PathError, match=r"memos home|database"):
            mem.export_jsonl(target)
    assert _home_files(home) == before
    assert mem.stats().items == 2
    mem.close()


def test_export_to_a_database_outside_the_home_is_refused(tmp_path: Path) -> None:
    mem = open_memos(tmp_path / "home", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    mem.add("one")
    for suffix in ("", "-wal"):
        with pytest.raises(PathError, match="database"):
            mem.export_jsonl(tmp_path / f"elsewhere.db{suffix}")
    assert mem.stats().items == 1
    mem.close()


def test_a_failed_export_leaves_the_old_file(
    mem: Memos, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from memos.store import transfer

    mem.add_many(["one", "two"])
    out = tmp_path / "out" / "dump.jsonl"
    out.parent.mkdir()
    mem.export_jsonl(out)
    good = out.read_bytes()

    def broken(db: object, cube: object) -> Iterator[str]:
        yield '{"partial": true}'
        raise OSError("disk full")

    monkeypatch.setattr(transfer, "cube_lines", broken)
    with pytest.raises(OSError, match="disk full"):
        mem.export_jsonl(out)
    assert out.read_bytes() == good
    assert [p.name for p in out.parent.iterdir()] == ["dump.jsonl"]
    with pytest.raises(PathError, match="folder"):
        mem.export_jsonl(out.parent)


def test_export_cli_refuses_the_live_database(tmp_path: Path) -> None:
    from memos.cli.main import app
    from typer.testing import CliRunner

    home = tmp_path / "home"
    runner = CliRunner()
    args = ["--home", str(home), "--embedder", "hashing"]
    assert runner.invoke(app, [*args, "add", "keep me"]).exit_code == 0
    result = runner.invoke(app, [*args, "export", str(home / "memos.db")])
    assert result.exit_code == 1 and "memos home" in result.output
    listed = runner.invoke(app, [*args, "ls", "--json"])
    assert listed.exit_code == 0 and "keep me" in listed.output


_BAD_FIELDS = [
    ("stability", -3, "stability"),
    ("stability", 0, "stability"),
    ("stability", "high", "stability"),
    ("stability", float("nan"), "stability"),
    ("stability", float("inf"), "stability"),
    ("access_count", -1, "access_count"),
    ("access_count", 2**40, "access_count"),
    ("access_count", 1.5, "access_count"),
    ("version", 0, "version"),
    ("pinned", "yes", "pinned"),
    ("trust", 2, "trust"),
    ("trust", float("nan"), "trust"),
    ("tags", [1], "tags"),
    ("tags", {"a": 1}, "tags"),
    ("id", "not-a-uuid", "id"),
    ("id", 7, "id"),
    ("role", "r" * 41, "role"),
    ("speaker", "nul\x00", "speaker"),
    ("user_id", "lone \ud800", "user_id"),
    ("metadata", {"k": "lone \ud800"}, "metadata"),
    ("metadata", {"k": "x" * 70_000}, "metadata"),
    ("text", "word " * 1000, "text"),
    ("text", None, "text"),
    ("created_at", None, "created_at"),
    ("created_at", "yesterday", "created_at"),
    ("source_kind", "s" * 41, "source_kind"),
    ("colour", "red", "colour"),
]


def _exported_lines(mem: Memos) -> list[str]:
    item = mem.add("one", tags=["t"])
    mem.update(item.id, "one, changed")
    mem.add("two")
    buffer = io.StringIO()
    mem.export_jsonl(buffer)
    return buffer.getvalue().splitlines()


@pytest.mark.parametrize(("field", "value", "named"), _BAD_FIELDS)
def test_import_applies_the_rules_of_add_to_every_field(
    mem: Memos, tmp_path: Path, field: str, value: object, named: str
) -> None:
    lines = _exported_lines(mem)
    item = json.loads(lines[1])
    item[field] = value
    if field == "text" and value is not None:
        item["content_hash"] = hashlib.sha256(value.strip().encode()).hexdigest()  # type: ignore[union-attr]
    lines[1] = json.dumps(item)
    target = open_memos(tmp_path / "t")
    with pytest.raises(ImportFormatError, match=rf"line 2, field '{named}'"):
        target.import_jsonl(io.StringIO("\n".join(lines)))
    assert target.cubes() == []
    target.close()


@pytest.mark.parametrize(
    "damage", ["duplicate id", "duplicate version", "version hash", "missing text", "a list"]
)
def test_import_names_the_line_and_what_is_wrong(mem: Memos, damage: str) -> None:
    lines = _exported_lines(mem)
    item = json.loads(lines[1])
    expected = {
        "duplicate id": r"line 3, field 'id': .* also on line 2",
        "duplicate version": r"line 2, field 'versions': version numbers repeat",
        "version hash": r"line 2, field 'versions': versions\[0\].content_hash does not match",
        "missing text": r"line 2, field 'text': missing",
        "a list": r"line 2, field '\(line\)': expected a JSON object, got list",
    }[damage]
    if damage == "duplicate id":
        other = json.loads(lines[2])
        other["id"] = item["id"]
        lines[2] = json.dumps(other)
    elif damage == "duplicate version":
        item["versions"][0]["version"] = item["versions"][1]["version"]
    elif damage == "version hash":
        item["versions"][0]["content_hash"] = "0" * 64
    elif damage == "missing text":
        del item["text"]
    else:
        item = [item]
    if damage != "duplicate id":
        lines[1] = json.dumps(item)
    mem.purge(json.loads(lines[1])["id"] if damage != "a list" else item[0]["id"])
    with pytest.raises(ImportFormatError, match=expected):
        mem.import_jsonl(io.StringIO("\n".join(lines)))
    assert mem.stats().items == 1


def test_a_newer_export_format_is_reported_as_newer(mem: Memos) -> None:
    header = json.dumps({"memos_export": 2, "cubes": []})
    with pytest.raises(ImportFormatError, match="newer memos"):
        mem.import_jsonl(io.StringIO(header + "\n"))
