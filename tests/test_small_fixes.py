"""Issue 11's smaller findings: each one a clear message, and nothing changed by a failure."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from helpers import open_memos
from memos.cli.main import app
from sqlalchemy import text
from typer.testing import CliRunner

from memos import InvalidInputError, PathError, StoreError, UnknownCubeError
from memos.client import Memos
from memos.errors import IndexRebuiltWarning
from memos.store import artifacts
from memos.store.db import Database


@pytest.fixture
def run(tmp_path: Path):  # type: ignore[no-untyped-def]
    runner = CliRunner()
    home = tmp_path / "home"

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(app, ["--home", str(home), "--embedder", "hashing", *args])

    return invoke


def _added_id(result) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, result.output
    return str(json.loads(result.stdout)[0]["id"])


def test_db_current_says_a_newer_database_is_newer(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert run("add", "keep me").exit_code == 0
    db = Database(f"sqlite:///{tmp_path / 'home' / 'memos.db'}")
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    db.dispose()
    result = run("db", "current")
    assert result.exit_code == 0 and "newer than this install" in result.output
    assert "behind" not in result.output
    assert json.loads(run("db", "current", "--json").stdout)["newer"] is True


def test_a_missing_index_file_is_rebuilt_with_a_warning(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert run("add", "keep me").exit_code == 0
    assert run("search", "keep").exit_code == 0
    [index] = (tmp_path / "home" / "indexes").rglob("*.safetensors")
    index.unlink()
    result = run("search", "keep")
    assert result.exit_code == 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: dense index"), result.stderr
    assert index.is_file()
    index.unlink()
    mem = open_memos(tmp_path / "home")
    with pytest.warns(IndexRebuiltWarning, match="does not exist"):
        mem.search("keep")
    mem.close()


def test_a_new_cube_is_indexed_without_a_warning(mem: Memos) -> None:
    mem.add("keep me")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert mem.search("keep")


@pytest.mark.parametrize("purge", [False, True])
def test_rm_checks_every_id_before_changing_any(run, purge: bool) -> None:  # type: ignore[no-untyped-def]
    good = _added_id(run("add", "keep me", "--json"))
    result = run("rm", good, "no-such-id", *(["--purge", "--yes"] if purge else []))
    assert result.exit_code == 1 and "no-such-id" in result.stderr
    shown = run("show", good, "--json")
    assert shown.exit_code == 0 and json.loads(shown.stdout)["state"] == "active"


def test_other_multi_id_commands_check_every_id_first(run) -> None:  # type: ignore[no-untyped-def]
    good = _added_id(run("add", "keep me", "--json"))
    assert run("rm", good).exit_code == 0
    result = run("restore", good, "no-such-id")
    assert result.exit_code == 1
    assert json.loads(run("show", good, "--json").stdout)["state"] == "deleted"
    assert run("rm", good).exit_code == 1  # already deleted: said so, nothing changed
    for group in ("kv", "adapters"):
        result = run(group, "rm", "no-such-id")
        assert result.exit_code == 1 and "no-such-id" in result.stderr


def test_a_database_in_a_missing_folder_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent" / "dir"
    result = CliRunner().invoke(app, ["--db", f"sqlite:///{missing / 'x.db'}", "cubes"])
    assert result.exit_code == 1 and "does not exist" in result.stderr
    assert not missing.parent.exists()


def test_jobs_with_an_unknown_status_fails(run) -> None:  # type: ignore[no-untyped-def]
    result = run("jobs", "--status", "bogus")
    assert result.exit_code == 1 and "bogus" in result.stderr and "planned" in result.stderr


def test_an_unknown_cube_is_reported_before_the_model_loads(mem: Memos) -> None:
    record = mem.add("keep me")
    with pytest.raises(UnknownCubeError):
        mem.activation.build("ghost", [record])
    with pytest.raises(UnknownCubeError):
        mem.consolidate("ghost", items=[record], rank=4, steps=1)
    assert not mem.core.lm_loaded


def test_an_index_path_that_is_a_folder_is_a_typed_error(mem: Memos) -> None:
    mem.add("keep me")
    cube = mem.core.cube("default")
    mem.indexes.path(cube.id).mkdir(parents=True)
    with pytest.warns(IndexRebuiltWarning), pytest.raises(PathError, match="folder"):
        mem.search("keep")


def test_add_file_errors_name_the_line(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    notes = tmp_path / "notes.txt"
    notes.write_text("fine\n\nalso fine\nbad \x00 line\n")
    result = run("add", "--file", str(notes))
    assert result.exit_code == 1 and "line 4" in result.stderr and "NUL" in result.stderr
    notes.write_bytes(b"fine\nbroken \xff\n")
    result = run("add", "--file", str(notes))
    assert result.exit_code == 1 and "line 2" in result.stderr
    assert json.loads(run("cubes", "--json").stdout) == []


def test_a_snapshot_of_the_same_item_twice_registers_it_once(mem: Memos, tmp_path: Path) -> None:
    record = mem.add("keep me")
    cube = mem.core.cube("default")
    path = mem.config.home / "kv" / cube.id / "a.safetensors"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"x")
    new = artifacts.NewArtifact("a", "kv", path, "0" * 64, 1, "lm:x", {})
    event = artifacts.store.EventSpec(mem.clock.now(), "kv.build")
    artifacts.register(mem.db, mem.config.home, cube, new, [record, record], event)
    assert [s.items for s in mem.activation.snapshots()] == [0]
    with pytest.raises(InvalidInputError, match="no memories"):
        mem.build_snapshot(items=[])


def test_a_failed_registration_leaves_no_orphan_file(mem: Memos) -> None:
    record = mem.add("keep me")
    cube = mem.core.cube("default")
    path = mem.config.home / "kv" / cube.id / "b.safetensors"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"x" * 1000)
    new = artifacts.NewArtifact("b", "kv", path, "0" * 64, 1, "lm:x", {"bad": {1, 2}})
    with pytest.raises(Exception, match="set"):
        artifacts.register(
            mem.db,
            mem.config.home,
            cube,
            new,
            [record],
            artifacts.store.EventSpec(mem.clock.now(), "kv.build"),
        )
    assert not path.exists()


def test_a_damaged_database_file_is_a_one_line_store_error(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert run("add", "keep me").exit_code == 0
    (tmp_path / "home" / "memos.db").write_bytes(b"not a database" * 100)
    for path in (tmp_path / "home").glob("memos.db-*"):
        path.unlink()
    with pytest.raises(StoreError, match="not a database"):
        open_memos(tmp_path / "home")
    result = run("ls")
    assert result.exit_code == 1 and "not a database" in result.stderr
    assert "Traceback" not in result.output
