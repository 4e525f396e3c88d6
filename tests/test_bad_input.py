"""Every kind of bad input gets a clear typed error and loses nothing stored."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from helpers import BrokenEmbedder, open_memos

from memos import (
    ConfigError,
    EmbedderError,
    InvalidFilterError,
    InvalidInputError,
    InvalidTextError,
    MemosError,
    MetadataTooLargeError,
    TextTooLongError,
    UnknownCubeError,
    UnknownItemError,
)
from memos.client import Memos
from memos.clock import ManualClock
from memos.config import MemosConfig


@pytest.fixture
def stocked(mem: Memos) -> Memos:
    mem.add_many(["keep me", "and me too"])
    return mem


def _intact(mem: Memos) -> None:
    assert mem.stats().items == 2
    assert [h.item.text for h in mem.search("keep me", k=1)] == ["keep me"]


@pytest.mark.parametrize(
    "text", ["", "   \n\t ", None, 42, b"bytes", ["list"], "lone \ud800 surrogate", "nul\x00char"]
)
def test_bad_text_is_refused(stocked: Memos, text: object) -> None:
    with pytest.raises(InvalidTextError):
        stocked.add(text)  # type: ignore[arg-type]
    _intact(stocked)


def test_bad_entry_in_a_batch_stores_none_of_it(stocked: Memos) -> None:
    with pytest.raises(InvalidTextError):
        stocked.add_many(["fine", "also fine", ""])
    with pytest.raises(InvalidInputError, match="message 1"):
        stocked.add_messages([{"role": "user", "content": "hi"}, {"role": "user"}])
    _intact(stocked)


def test_text_over_the_limit_is_refused_and_chunking_is_offered(stocked: Memos) -> None:
    long = "word " * 1000  # 5000 characters > 4000
    with pytest.raises(TextTooLongError, match="add_document"):
        stocked.add(long)
    _intact(stocked)
    chunks = stocked.add_document(long, cube="docs")
    assert len(chunks) > 1
    assert all(len(c.text) <= stocked.config.chunk_chars for c in chunks)
    assert {c.metadata["chunks"] for c in chunks} == {len(chunks)}


def test_unknown_ids_and_cubes(stocked: Memos) -> None:
    for call in (stocked.get, stocked.history, stocked.delete, stocked.purge, stocked.restore):
        with pytest.raises(UnknownItemError):
            call("no-such-id")
    with pytest.raises(UnknownItemError):
        stocked.update("no-such-id", "x")
    with pytest.raises(UnknownCubeError):
        stocked.search("x", cube="ghost")
    with pytest.raises(InvalidInputError):
        stocked.add("x", cube="bad name!")
    _intact(stocked)


@pytest.mark.parametrize(
    "flt",
    [
        {"colour": "red"},
        {"states": ["deleted"]},
        {"states": ["bogus"]},
        {"since": "not a date"},
        {"since": "2024-02-01", "until": "2024-01-01"},
        {"metadata": {"k": [1, 2]}},
        {"metadata": {"bad key!": 1}},
        {"tags": [1]},
        {"user_id": 5},
        "not a dict",
    ],
)
def test_invalid_filters(stocked: Memos, flt: object) -> None:
    with pytest.raises(InvalidFilterError):
        stocked.search("keep", filter=flt)  # type: ignore[arg-type]
    _intact(stocked)


@pytest.mark.parametrize("bad", [{"k": 0}, {"k": 5000}, {"k": "3"}, {"mode": "magic"}])
def test_invalid_search_arguments(stocked: Memos, bad: dict) -> None:
    with pytest.raises(InvalidInputError):
        stocked.search("keep", **bad)


@pytest.mark.parametrize("fault", ["nan", "dim", "raise"])
def test_broken_embedder_stores_nothing(tmp_path: Path, fault: str) -> None:
    good = open_memos(tmp_path / "h")
    good.add_many(["keep me", "and me too"])
    good.close()
    broken = Memos(
        MemosConfig(home=tmp_path / "h"), embedder=BrokenEmbedder(fault), clock=ManualClock()
    )
    with pytest.raises(EmbedderError):
        broken.add("a new memory")
    with pytest.raises(EmbedderError):
        broken.search("keep")
    broken.close()
    again = open_memos(tmp_path / "h")
    _intact(again)
    again.close()


def test_bad_field_values(stocked: Memos) -> None:
    for fields in (
        {"trust": 2.0},
        {"pinned": "yes"},
        {"metadata": {"x": object()}},
        {"tags": [""]},
        {"event_time": "yesterday"},
        {"colour": "red"},
    ):
        with pytest.raises(InvalidInputError):
            stocked.add("valid text", **fields)
    with pytest.raises(InvalidInputError):
        stocked.update(stocked.list()[0].id, colour="red")
    with pytest.raises(InvalidInputError):
        stocked.context("keep", budget_tokens=0)
    _intact(stocked)


@pytest.mark.parametrize(
    "values",
    [
        {"index_kind": "ivf"},
        {"chunk_overlap": 5000},
        {"max_text_chars": 0},
        {"retention_weight": 2},
    ],
)
def test_bad_config_names_value_and_allowed(tmp_path: Path, values: dict) -> None:
    with pytest.raises(ConfigError) as info:
        MemosConfig(home=tmp_path, **values)
    assert next(iter(values)) in str(info.value)


def test_every_error_is_a_memos_error() -> None:
    for error in (ConfigError, EmbedderError, InvalidFilterError, UnknownCubeError):
        assert issubclass(error, MemosError)


# -- issue 11: every string field is storable on both backends ----------------

_SURROGATE, _NUL = "lone \ud800 half", "nul\x00char"


@pytest.mark.parametrize("bad", [_SURROGATE, _NUL])
@pytest.mark.parametrize(
    "field",
    [
        *("metadata value", "metadata key", "nested metadata", "user_id", "agent_id"),
        *("speaker", "session_id", "role", "source", "tags"),
    ],
)
def test_bad_strings_in_any_field_are_refused(any_mem: Memos, field: str, bad: str) -> None:
    any_mem.add_many(["keep me", "and me too"])
    value: object = {
        "metadata value": {"metadata": {"k": bad}},
        "metadata key": {"metadata": {bad: 1}},
        "nested metadata": {"metadata": {"k": [{"deep": bad}]}},
        "tags": {"tags": ["fine", bad]},
    }.get(field, {field: bad})
    with pytest.raises(InvalidInputError):
        any_mem.add("valid text", **value)  # type: ignore[arg-type]
    _intact(any_mem)
    any_mem.export_jsonl(io.StringIO())
    assert [r.to_dict() for r in any_mem.list()]


@pytest.mark.parametrize("bad", [_SURROGATE, _NUL])
@pytest.mark.parametrize("field", ["user_id", "speaker", "tags", "metadata"])
def test_bad_strings_in_filters_are_refused(any_mem: Memos, field: str, bad: str) -> None:
    any_mem.add_many(["keep me", "and me too"])
    flt = {"tags": [bad]} if field == "tags" else {"metadata": {"k": bad}}
    with pytest.raises(InvalidFilterError):
        any_mem.search("keep", filter={field: bad} if field in ("user_id", "speaker") else flt)
    _intact(any_mem)


def test_bounded_fields_have_the_same_limit_on_both_backends(any_mem: Memos) -> None:
    any_mem.add_many(["keep me", "and me too"])
    item = any_mem.list()[0]
    calls = [
        lambda: any_mem.add("valid text", role="r" * 41),
        lambda: any_mem.add("valid text", source="s" * 41),
        lambda: any_mem.add("valid text", speaker="s" * 201),
        lambda: any_mem.add("valid text", tags=["t" * 201]),
        lambda: any_mem.add("valid text", event_time=1e20),
        lambda: any_mem.add("valid text", trust=float("nan")),
        lambda: any_mem.update(item.id, "new text", reason="r" * 201),
        lambda: any_mem.update(item.id, role="r" * 41),
        lambda: any_mem.delete(item.id, reason=_NUL),
        lambda: any_mem.purge(item.id, reason="r" * 201),
        lambda: any_mem.create_cube("fine", owner_id=_NUL),
    ]
    for call in calls:
        with pytest.raises(InvalidInputError):
            call()
    assert any_mem.add("valid text", role="r" * 40).role == "r" * 40
    for bad_id in (_NUL, _SURROGATE):
        for call in (any_mem.get, any_mem.delete, any_mem.purge, any_mem.history):
            with pytest.raises(UnknownItemError):
                call(bad_id)
        with pytest.raises(UnknownItemError):
            any_mem.mark_used([bad_id])
    assert any_mem.stats().items == 3


def test_metadata_has_a_size_limit(mem: Memos) -> None:
    mem.add_many(["keep me", "and me too"])
    with pytest.raises(MetadataTooLargeError, match="65536"):
        mem.add("valid text", metadata={"blob": "x" * 70_000})
    with pytest.raises(MetadataTooLargeError):
        mem.add_many([{"text": "a", "metadata": {f"k{i}": "é" * 40 for i in range(900)}}])
    _intact(mem)
    assert mem.add("valid text", metadata={"blob": "x" * 60_000}).metadata["blob"]


_EDGE = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))
_CALLS = {
    "list limit too big": lambda m: m.list(limit=10**20),
    "list limit str": lambda m: m.list(limit="5"),
    "list offset too big": lambda m: m.list(offset=10**20),
    "iterate batch 0": lambda m: list(m.iterate(batch=0)),
    "event_time out of UTC": lambda m: m.add("x", event_time=_EDGE),
    "filter since out of UTC": lambda m: m.search("x", filter={"since": _EDGE}),
    "filter int too big": lambda m: m.search("x", filter={"metadata": {"a": 10**30}}),
    "decay now not a time": lambda m: m.decay(now="someday"),
    "retention at not a time": lambda m: m.retention(m.list()[0].id, at=[1]),
}


@pytest.mark.parametrize("call", list(_CALLS), ids=list(_CALLS))
def test_no_untyped_error_reaches_a_caller(any_mem: Memos, call: str) -> None:
    any_mem.add_many(["keep me", "and me too"])
    with pytest.raises(InvalidInputError):
        _CALLS[call](any_mem)
    _intact(any_mem)
