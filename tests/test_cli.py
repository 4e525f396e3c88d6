"""The ``memos`` CLI with an isolated MEMOS_HOME.

Most commands run on the model-free hashing embedder (``--embedder hashing``);
the tests marked ``real_model`` run on the real default embedder, where search
quality is what they check.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from memos.cli.main import app
from typer.testing import CliRunner


@pytest.fixture
def run(tmp_path: Path, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    runner = CliRunner()
    home = tmp_path / "home"
    real = request.node.get_closest_marker("real_model") is not None
    embedder = [] if real else ["--embedder", "hashing"]

    def invoke(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
        return runner.invoke(app, ["--home", str(home), *embedder, *args], input=input)

    return invoke


def _json(result) -> object:  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.real_model
def test_add_search_show_history_rm(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    added = _json(
        run(
            "add",
            "Maya",
            "is",
            "allergic",
            "to",
            "peanuts",
            "-t",
            "health",
            "-m",
            "source=chat",
            "--json",
        )
    )
    item_id = added[0]["id"]
    assert added[0]["text"] == "Maya is allergic to peanuts"
    assert added[0]["metadata"] == {"source": "chat"}
    notes = tmp_path / "notes.txt"
    notes.write_text("Maya drinks jasmine tea\n\nMaya lives in Lisbon\n")
    assert run("add", "--file", str(notes)).exit_code == 0

    hits = _json(run("search", "what", "can't", "Maya", "eat?", "-k", "2", "--json"))
    assert hits[0]["item"]["id"] == item_id
    assert {"dense", "keyword", "fused", "final"} <= set(hits[0]["parts"])
    human = run("search", "tea")
    assert human.exit_code == 0 and "jasmine" in human.stdout

    assert _json(run("show", item_id, "--json"))["tags"] == ["health"]
    listed = _json(run("ls", "--json"))
    assert len(listed) == 3
    assert _json(run("stats", "--json"))["items"] == 3
    assert _json(run("cubes", "--json")) == ["default"]
    assert len(_json(run("history", item_id, "--json"))) == 1

    assert run("rm", item_id).exit_code == 0
    assert _json(run("show", item_id, "--json"))["state"] == "deleted"
    assert run("restore", item_id).exit_code == 0
    assert run("rm", item_id, "--purge", "--yes").exit_code == 0
    gone = run("show", item_id)
    assert gone.exit_code == 1 and "no memory item" in gone.stderr


def test_export_import_index_db(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run("add", "first fact", "-c", "work")
    run("add", "second fact", "-c", "work")
    out = tmp_path / "dump.jsonl"
    assert run("export", str(out)).exit_code == 0
    assert len(out.read_text().splitlines()) == 3
    other = CliRunner().invoke(
        app, ["--home", str(tmp_path / "other"), "import", str(out), "--json"]
    )
    assert json.loads(other.stdout)["imported"] == 2
    assert _json(run("index", "rebuild", "--json")) == {"work": 2}
    current = _json(run("db", "current", "--json"))
    assert current["up_to_date"] and current["current"] == current["head"]
    assert run("db", "upgrade").exit_code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("add", ""), "empty"),
        (("add",), "nothing to add"),
        (("search", "x", "-c", "ghost"), "unknown cube"),
        (("search", "x", "-k", "0"), "k=0"),
        (("search", "x", "--state", "deleted"), "states"),
        (("search", "x", "--since", "someday"), "ISO"),
        (("add", "x", "-m", "novalue"), "key=value"),
        (("show", "missing-id"), "no memory item"),
        (("add", "--file", "/no/such/file"), "No such file"),
        (("import", "/no/such/file"), "No such file"),
        (("eval", "locomo", "/no/such/file"), "no such file"),
    ],
)
def test_bad_input_is_one_line_and_non_zero(run, args, message) -> None:  # type: ignore[no-untyped-def]
    if args[0] == "search":
        run("add", "something to search")
    result = run(*args)
    assert result.exit_code != 0
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) <= 1


def test_invalid_utf8_file(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok line\n\xff\xfe broken\n")
    result = run("add", "--file", str(bad))
    assert result.exit_code == 1 and "not valid UTF-8" in result.stderr


@pytest.mark.real_model
def test_demo_quick(run) -> None:  # type: ignore[no-untyped-def]
    results = _json(run("demo", "--quick", "--json"))
    answers = {q: hits[0]["text"] for q, hits in results["search"].items()}
    best = results["search"]["Where does Maya work?"][0]
    assert 0 < best["similarity"] <= 1 and best["word_match"] is True
    assert answers["Where does Maya work?"] == "Maya works as a marine biologist in Lisbon"
    assert answers["What does Maya like to drink?"] == "Maya's favourite drink is jasmine tea"


def test_lifecycle_commands(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from datetime import datetime, timedelta, timezone

    added = _json(run("add", "the garage door code is 5521", "--json"))
    item_id = added[0]["id"]
    assert run("used", item_id).exit_code == 0
    later = (datetime.now(timezone.utc) + timedelta(days=20)).isoformat()
    planned = _json(run("decay", "--now", later, "--dry-run", "--json"))
    assert planned["dry_run"] and planned["changes"][0]["new"] == "archived"
    shown = _json(run("show", item_id, "--json"))
    assert shown["state"] == "active" and 0.99 < shown["retention"] <= 1.0
    moved = _json(run("decay", "--now", later, "--json"))
    assert [c["item_id"] for c in moved["changes"]] == [item_id]

    shown = _json(run("inspect", "--json"))
    assert shown["by_state"] == {"archived": 1} and sum(shown["retention_bins"]) == 1
    assert [t["tier"] for t in shown["tiers"]] == ["plaintext", "activation", "parametric"]
    assert "retention" in run("inspect").output

    assert _json(run("consolidate", "--dry-run", "--json"))["steps"] == []
    assert _json(run("consolidate", "--json"))["jobs"] == []
    assert _json(run("jobs", "--json")) == []

    png = tmp_path / "curves.png"
    result = run("plot", "retention", item_id, "--out", str(png))
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert run("plot", "retention", "--out", str(png), "--tag", "none-such").exit_code == 1

    assert run("restore", item_id).exit_code == 0
    assert _json(run("show", item_id, "--json"))["state"] == "active"
    bad = run("decay", "--now", "not-a-time")
    assert bad.exit_code == 1
    assert bad.stderr.strip() == (
        "error: --now='not-a-time' is not a datetime, ISO 8601 string or timestamp"
    )
    vital = _json(run("add", "the dog needs insulin at 8", "--importance", "1", "--json"))
    assert vital[0]["stability"] == 35.0
    assert run("add", "anything", "--importance", "2").exit_code == 1


def test_adapters_commands(run, lm, monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MEMOS_LM", str(lm.path))
    assert run("add", "Zorbil's favourite colour is amberine.", "-c", "facts").exit_code == 0
    # no locality term or gate: they keep other answers, and two steps teach nothing anyway
    quick = ("-c", "facts", "--rank", "4", "--steps", "2", "--layers", "10")
    quick += ("--locality-weight", "0", "--no-gate")
    bad = run("adapters", "train", *quick, "--lr", "0")
    assert bad.exit_code != 0 and "lr must be > 0" in bad.output
    bad = run("adapters", "train", *quick, "--locality-weight", "-1")
    assert bad.exit_code != 0 and "locality_weight >= 0" in bad.output
    trained = _json(run("adapters", "train", *quick, "--batch-size", "2", "--json"))
    assert trained["rank"] == 4 and trained["layers"] == [10]
    assert trained["training"]["steps"] == 2 and trained["items"] == 1
    assert [a["id"] for a in _json(run("adapters", "ls", "--json"))] == [trained["id"]]
    assert _json(run("adapters", "attach", trained["id"], "--json"))["attached"]
    merged = _json(run("adapters", "merge", trained["id"], "--out", str(tmp_path / "m"), "--json"))
    assert (Path(merged["path"]) / "config.json").is_file()
    assert _json(run("adapters", "rm", trained["id"], "--json")) == {"removed": [trained["id"]]}
    assert _json(run("adapters", "ls", "--json")) == []
