"""The SDK's calls, run against the embedded ``Memos`` and the remote one alike.

One parametrized fixture gives each test either the embedded object or
``RemoteMemos`` talking to the HTTP app (in-process) with a tenant's key, so
the two cannot drift: same methods, same records, same typed errors.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers import open_memos

from memos.errors import DuplicateError, InvalidInputError, UnknownCubeError, UnknownItemError
from memos.records import ContextBlock, MemoryRecord, MemoryVersion, SearchHit
from memos.service import keys
from memos.service.app import create_app
from memos.service.remote import RemoteMemos


@pytest.fixture(params=["embedded", "remote"])
def sdk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    mem = open_memos(tmp_path / "home")
    if request.param == "embedded":
        yield mem
    else:
        key, _ = keys.create_key(mem.db, "acme", ("read", "write", "admin"), mem.clock.now())
        with TestClient(create_app(mem, mcp=False)) as http:
            yield RemoteMemos("http://testserver", api_key=key, http=http)
    mem.close()


def test_add_and_get_keep_every_field(sdk: Any) -> None:
    when = (sdk.get(sdk.add("anchor").id).created_at - timedelta(days=3)).replace(microsecond=0)
    record = sdk.add(
        "  Alice prefers green tea  ",
        cube="alice",
        metadata={"source": "chat", "n": 2},
        tags=["pref", "drink"],
        user_id="alice",
        speaker="Alice",
        role="user",
        event_time=when,
        pinned=True,
        trust=0.5,
    )
    assert isinstance(record, MemoryRecord)
    assert sdk.get(record.id) == record
    assert record.text == "Alice prefers green tea" and record.cube == "alice"
    assert record.tags == ["drink", "pref"] and record.event_time == when and record.pinned
    assert sdk.add("Alice prefers green tea", cube="alice").id == record.id  # stored once
    assert sdk.cubes() == ["alice", "default"]


def test_add_messages_keeps_speakers(sdk: Any) -> None:
    stored = sdk.add_messages(
        [
            {"role": "user", "content": "I moved to Lisbon", "name": "Ana"},
            {"role": "assistant", "content": "Noted, Lisbon it is"},
        ],
        cube="chat",
        session_id="s1",
    )
    assert [r.role for r in stored] == ["user", "assistant"]
    assert stored[0].speaker == "Ana" and stored[0].session_id == "s1"
    assert all(isinstance(r, MemoryRecord) for r in stored)


def test_search_and_context(sdk: Any) -> None:
    sdk.add_many(["Bob lives in Rome", "Carol plays the cello", "Dan bakes bread"], cube="c")
    hits = sdk.search("where does Bob live", cube="c", k=2)
    assert isinstance(hits[0], SearchHit) and hits[0].item.text == "Bob lives in Rome"
    assert hits[0].parts.final == hits[0].score and len(hits) == 2
    keyword = sdk.search("cello", cube="c", mode="keyword", filter={"tags": []})
    assert [h.item.text for h in keyword] == ["Carol plays the cello"]
    block = sdk.context("Bob", cube="c", budget_tokens=40)
    assert isinstance(block, ContextBlock) and "Bob lives in Rome" in block.text
    assert block.tokens <= 40
    with pytest.raises(UnknownCubeError, match=r"unknown cube 'nope' \(known: c"):
        sdk.search("x", cube="nope")
    with pytest.raises(InvalidInputError):
        sdk.context("Bob", cube="c", budget_tokens=0)


def test_update_history_delete_restore(sdk: Any) -> None:
    record = sdk.add("Bob lives in Paris", tags=["home"])
    updated = sdk.update(record.id, "Bob lives in Rome", tags=["home", "moved"], reason="moved")
    assert updated.version == 2 and updated.text == "Bob lives in Rome"
    history = sdk.history(record.id)
    assert all(isinstance(v, MemoryVersion) for v in history)
    assert [v.text for v in history] == ["Bob lives in Paris", "Bob lives in Rome"]
    assert history[-1].reason == "moved"
    other = sdk.add("Bob likes jazz")
    with pytest.raises(DuplicateError):
        sdk.update(other.id, "Bob lives in Rome")
    assert sdk.delete(record.id).state == "deleted"
    assert record.id not in [h.item.id for h in sdk.search("Rome")]
    assert sdk.restore(record.id).state == "active"
    assert sdk.search("Rome")[0].item.id == record.id
    with pytest.raises(UnknownItemError):
        sdk.get("no-such-id")


def test_export_then_import_into_another_cube(sdk: Any) -> None:
    first = sdk.add("the sky is blue", cube="src", tags=["sky"])
    sdk.update(first.id, "the sky is deep blue")
    sdk.add("grass is green", cube="src")
    out = io.StringIO()
    assert sdk.export_jsonl(out, cube="src") == 2
    sdk.purge(first.id)
    report = sdk.import_jsonl(io.StringIO(out.getvalue()))
    assert (report.imported, report.skipped, report.cubes) == (1, 1, ["src"])
    back = sdk.get(first.id)
    assert back.text == "the sky is deep blue" and back.cube == "src"
    assert [v.version for v in sdk.history(first.id)] == [1, 2]
    copied = sdk.import_jsonl(io.StringIO(out.getvalue()), cube="copy")
    assert copied.cubes == ["copy"] and copied.skipped == 2


def test_export_keeps_texts_with_line_separators_inside(sdk: Any) -> None:
    odd = "first\u2028second\x0cthird\x1cfourth\u0085fifth"
    sdk.add(odd, cube="odd")
    out = io.StringIO()
    assert sdk.export_jsonl(out, cube="odd") == 1
    sdk.purge(sdk.list(cube="odd")[0].id)
    assert sdk.import_jsonl(io.StringIO(out.getvalue())).imported == 1
    assert [r.text for r in sdk.list(cube="odd")] == [odd]


@pytest.mark.parametrize(
    ("embedded", "remote", "names"),
    [
        (
            "memos.client:Memos",
            "memos.service.remote:RemoteMemos",
            ("build_snapshot", "consolidate", "chat"),
        ),
        (
            "memos.parametric.tier:ParametricTier",
            "memos.service.remote:RemoteParametric",
            ("adapters", "info", "attach", "detach"),
        ),
    ],
)
def test_model_calls_keep_the_embedded_signatures(
    embedded: str, remote: str, names: tuple[str, ...]
) -> None:
    """The remote twins of the calls that reach the model (exercised end to end
    in tests/test_service_lm.py) take the same parameters, kinds and defaults."""
    import importlib
    import inspect

    def load(spec: str) -> Any:
        module, name = spec.split(":")
        return getattr(importlib.import_module(module), name)

    for name in names:
        want = inspect.signature(getattr(load(embedded), name)).parameters
        got = inspect.signature(getattr(load(remote), name)).parameters
        shape = [(p.name, p.kind, p.default) for p in want.values()]
        assert [(p.name, p.kind, p.default) for p in got.values()] == shape, name
