"""``MemosStore``: LangGraph's ``BaseStore`` over memos, embedded and remote.

What LangGraph's own store tests check (put/get/delete, namespace rules,
search by prefix, filters and query, list_namespaces, batch order, TTL),
written again for memos, each run over the embedded SDK and over
``RemoteMemos`` against the real HTTP app.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest

pytest.importorskip(
    "langgraph", reason="langgraph is not installed (pip install memos-tiers[langgraph])"
)

from fastapi.testclient import TestClient
from helpers import open_memos
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AnyMessage, HumanMessage, SystemMessage
from langgraph.graph import END, START, StateGraph, add_messages
from langgraph.store.base import (
    BaseStore,
    GetOp,
    InvalidNamespaceError,
    ListNamespacesOp,
    PutOp,
    SearchOp,
)
from readme_examples import run_example

from memos.client import Memos
from memos.clock import ManualClock
from memos.integrations.langgraph import MemosStore
from memos.service import keys
from memos.service.app import create_app
from memos.service.remote import RemoteMemos


@dataclass
class Door:
    """The SDK a store runs over, and the embedded store behind it (with its clock)."""

    memos: Any
    served: Memos
    clock: ManualClock

    def store(self, **settings: Any) -> MemosStore:
        return MemosStore(self.memos, now=self.clock.now, **settings)


@pytest.fixture(params=["embedded", "remote"])
def door(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Door]:
    mem = open_memos(tmp_path / "home")
    clock = mem.clock
    assert isinstance(clock, ManualClock)
    if request.param == "embedded":
        yield Door(mem, mem, clock)
    else:
        key, _ = keys.create_key(mem.db, "agents", ("read", "write"), clock.now())
        with TestClient(create_app(mem, mcp=False), raise_server_exceptions=False) as http:
            yield Door(RemoteMemos("http://testserver", api_key=key, http=http), mem, clock)
    mem.close()


@pytest.fixture
def store(door: Door) -> MemosStore:
    return door.store()


def test_put_get_delete(store: MemosStore) -> None:
    ns = ("users", "u1")
    assert store.get(ns, "missing") is None
    store.put(ns, "prefs", {"drink": "tea", "n": 1})
    item = store.get(ns, "prefs")
    assert item is not None
    assert (item.namespace, item.key, item.value) == (ns, "prefs", {"drink": "tea", "n": 1})
    assert item.created_at.tzinfo is not None and item.updated_at >= item.created_at
    store.put(ns, "prefs", {"drink": "coffee"})
    assert store.get(ns, "prefs").value == {"drink": "coffee"}  # type: ignore[union-attr]
    store.put(ns, 5, {"v": 1})  # type: ignore[arg-type]
    assert store.get(ns, "5").value == {"v": 1}  # type: ignore[union-attr]
    store.delete(ns, "prefs")
    assert store.get(ns, "prefs") is None
    store.delete(ns, "never-there")  # deleting a missing key is quiet


def test_same_key_in_other_namespaces_is_another_value(store: MemosStore) -> None:
    store.put(("a",), "k", {"v": "a"})
    store.put(("a", "b"), "k", {"v": "ab"})
    store.put(("b",), "k", {"v": "b"})
    assert store.get(("a",), "k").value == {"v": "a"}  # type: ignore[union-attr]
    assert store.get(("a", "b"), "k").value == {"v": "ab"}  # type: ignore[union-attr]
    store.delete(("a",), "k")
    assert store.get(("a", "b"), "k") is not None


@pytest.mark.parametrize(
    "namespace", [(), ("",), ("has.dot",), ("nul\x00",), ("langgraph", "x"), (1,)]
)
def test_bad_namespaces_are_refused(store: MemosStore, namespace: tuple) -> None:
    with pytest.raises(InvalidNamespaceError):
        store.put(namespace, "k", {"v": 1})
    with pytest.raises(InvalidNamespaceError):  # straight to batch, past BaseStore's checks
        store.batch([PutOp(namespace, "k", {"v": 1})])


def test_search_by_prefix_pages_and_filters(store: MemosStore) -> None:
    docs = [
        (("docs", "a"), "1", {"color": "red", "score": 4.5, "tags": ["x", "y"], "meta": {"k": 1}}),
        (("docs", "a"), "2", {"color": "blue", "score": 3.0, "tags": ["x"]}),
        (("docs", "b"), "3", {"color": "red", "score": 5.0, "meta": {"k": 2}}),
        (("other",), "4", {"color": "red", "score": 1.0}),
    ]
    for ns, key, value in docs:
        store.put(ns, key, value)

    def keys_of(prefix: tuple[str, ...], **kw: object) -> list[str]:
        return sorted(i.key for i in store.search(prefix, **kw))  # type: ignore[arg-type]

    assert keys_of(("docs",)) == ["1", "2", "3"]
    assert keys_of(()) == ["1", "2", "3", "4"]
    assert keys_of(("docs", "a")) == ["1", "2"]
    assert keys_of(("nope",)) == []
    assert keys_of(("docs",), filter={"color": "red"}) == ["1", "3"]
    assert keys_of(("docs",), filter={"score": {"$gt": 4.0}}) == ["1", "3"]
    assert keys_of(("docs",), filter={"score": {"$gte": 3.0, "$lt": 5.0}}) == ["1", "2"]
    assert keys_of(("docs",), filter={"score": {"$lte": 3.0}}) == ["2"]
    assert keys_of(("docs",), filter={"color": {"$ne": "red"}}) == ["2"]
    assert keys_of(("docs",), filter={"color": {"$eq": "blue"}}) == ["2"]
    assert keys_of(("docs",), filter={"meta": {"k": 2}}) == ["3"]
    assert keys_of(("docs",), filter={"tags": ["x"]}) == ["2"]  # a list matches as a whole
    assert keys_of(("docs",), filter={"color": "red", "score": {"$lt": 5}}) == ["1"]
    assert keys_of(("docs",), filter={"missing": {"$ne": 1}}) == ["1", "2", "3"]
    with pytest.raises(ValueError, match="Unsupported operator"):
        store.search(("docs",), filter={"color": {"$in": ["red"]}})

    pages = [store.search(("docs",), limit=2, offset=o) for o in (0, 2, 4)]
    assert [len(p) for p in pages] == [2, 1, 0]
    assert sorted(i.key for p in pages for i in p) == ["1", "2", "3"]
    assert all(i.score is None for i in pages[0])  # no query, no score


def test_search_by_query_ranks_by_meaning_and_index_fields(store: MemosStore) -> None:
    ns = ("memories", "u1")
    store.put(ns, "tea", {"text": "the user drinks green tea every morning"})
    store.put(ns, "bike", {"text": "the user rides a red bicycle to work"})
    store.put(ns, "cat", {"text": "the user has a cat called Miso"}, index=["text"])
    store.put(ns, "secret", {"text": "green tea is the password hint"}, index=False)
    hits = store.search(ns, query="what does the user drink, tea?", limit=4)
    assert hits[0].key == "tea"
    assert isinstance(hits[0].score, float)
    scored = [h.score for h in hits if h.score is not None]
    assert scored == sorted(scored, reverse=True)
    # a value stored unembedded is never ranked by a query: it comes last, unscored
    assert hits[-1].key == "secret" and hits[-1].score is None
    assert [h.key for h in store.search(ns, query="bicycle", limit=1)] == ["bike"]
    assert store.search(ns, query="tea", filter={"text": {"$ne": "x"}}, limit=1)[0].key == "tea"


def test_index_paths_pick_what_is_embedded(door: Door) -> None:
    store = door.store(index=["title", "notes[*].body"])
    store.put(("kb",), "a", {"title": "sourdough", "notes": [{"body": "starter feeding"}]})
    store.put(("kb",), "b", {"title": "espresso", "notes": [{"body": "grind size"}]})
    assert store.search(("kb",), query="starter feeding", limit=1)[0].key == "a"
    assert store.search(("kb",), query="grind size espresso", limit=1)[0].key == "b"
    # fields outside the index paths are kept but not searched by
    store.put(("kb",), "c", {"title": "bread", "hidden": "zymurgy"})
    assert store.get(("kb",), "c").value["hidden"] == "zymurgy"  # type: ignore[union-attr]


def test_list_namespaces(store: MemosStore) -> None:
    for ns in [
        ("a", "b", "c"),
        ("a", "b", "d", "e"),
        ("a", "b", "d", "i"),
        ("a", "b", "f"),
        ("a", "c", "f"),
        ("x", "v1"),
    ]:
        store.put(ns, "k", {"v": 1})
    assert store.list_namespaces(prefix=("a", "b"), max_depth=3) == [
        ("a", "b", "c"),
        ("a", "b", "d"),
        ("a", "b", "f"),
    ]
    assert store.list_namespaces(suffix=("f",)) == [("a", "b", "f"), ("a", "c", "f")]
    assert store.list_namespaces(prefix=("a", "*", "f")) == [("a", "b", "f"), ("a", "c", "f")]
    assert store.list_namespaces(prefix=("a",), suffix=("e",)) == [("a", "b", "d", "e")]
    assert store.list_namespaces(limit=2, offset=1) == [("a", "b", "d", "e"), ("a", "b", "d", "i")]
    assert store.list_namespaces(max_depth=1) == [("a",), ("x",)]
    store.delete(("x", "v1"), "k")
    assert ("x", "v1") not in store.list_namespaces()  # an emptied namespace is gone


def test_batch_reads_before_writes_and_last_put_wins(store: MemosStore) -> None:
    ns = ("b",)
    store.put(ns, "k", {"v": 0})
    results = store.batch(
        [
            PutOp(ns, "k", {"v": 1}),
            GetOp(ns, "k"),
            PutOp(ns, "k", {"v": 2}),
            SearchOp(ns),
            ListNamespacesOp(),
        ]
    )
    assert results[0] is None and results[2] is None
    assert results[1].value == {"v": 0}  # type: ignore[union-attr]
    assert [i.value for i in results[3]] == [{"v": 0}]  # type: ignore[union-attr]
    assert results[4] == [ns]
    assert store.get(ns, "k").value == {"v": 2}  # type: ignore[union-attr]


def test_async_methods(store: MemosStore) -> None:
    async def go() -> list:
        await store.aput(("as",), "k", {"text": "async values work"})
        got = await store.aget(("as",), "k")
        found = await store.asearch(("as",), query="async")
        await store.adelete(("as",), "k")
        return [got, found, await store.aget(("as",), "k")]

    got, found, gone = asyncio.run(go())
    assert got.value == {"text": "async values work"}
    assert [i.key for i in found] == ["k"]
    assert gone is None


def test_ttl_counts_from_last_use(door: Door) -> None:
    clock = door.clock
    store = door.store(ttl={"default_ttl": 60, "refresh_on_read": True})
    ns = ("t",)
    store.put(ns, "default", {"v": 1})
    store.put(ns, "short", {"v": 2}, ttl=10)
    store.put(ns, "forever", {"v": 3}, ttl=None)
    clock.advance(timedelta(minutes=11))
    assert store.get(ns, "short") is None  # expired, and deleted when met
    assert store.get(ns, "default") is not None  # read at 11 min: refreshed
    door.served.core.recalls.flush()  # recalls are written within recall_flush_s
    clock.advance(timedelta(minutes=55))  # 66 min after the put, 55 after the read
    assert store.get(ns, "default", refresh_ttl=False) is not None
    clock.advance(timedelta(minutes=10))  # 65 after the last refreshing read
    assert store.get(ns, "default") is None
    assert [i.key for i in store.search(ns)] == ["forever"]
    assert store.list_namespaces() == [ns]


def test_values_live_in_memos(door: Door, store: MemosStore) -> None:
    """A value is a memos item: found by memos search and with history."""
    memos = door.memos
    store.put(("users", "u1"), "fact", {"text": "Ada prefers window seats"})
    store.put(("users", "u1"), "fact", {"text": "Ada prefers aisle seats"})
    hits = memos.search("aisle seats", cube="langgraph", k=1)
    assert hits and hits[0].item.metadata["lg_key"] == "fact"
    versions = memos.history(hits[0].item.id)
    assert len(versions) == 2


def test_a_value_too_large_or_unjsonable_is_refused(store: MemosStore) -> None:
    from memos.errors import MemosError

    store.put(("ok",), "k", {"v": 1})
    with pytest.raises(MemosError):
        store.put(("ok",), "k", {"v": datetime.now()})
    assert store.get(("ok",), "k").value == {"v": 1}  # type: ignore[union-attr]


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    user: str


def test_a_graph_keeps_long_term_memory_in_memos(store: MemosStore) -> None:
    """A LangGraph graph (a fake chat model, no LLM call) writes memories in one
    run and reads them back by meaning in the next."""
    model = FakeListChatModel(responses=["Noted.", "You drink green tea."])
    prompts: list[str] = []

    def remember(state: State, store: BaseStore) -> dict:
        text = str(state["messages"][-1].content)
        if text.startswith("remember:"):
            store.put(("memories", state["user"]), f"m{len(text)}", {"text": text[9:].strip()})
        return {}

    def respond(state: State, store: BaseStore) -> dict:
        question = str(state["messages"][-1].content)
        found = store.search(("memories", state["user"]), query=question, limit=2)
        prompts.append("; ".join(m.value["text"] for m in found))
        reply = model.invoke([SystemMessage(f"Memories: {prompts[-1]}"), *state["messages"]])
        return {"messages": [reply]}

    graph = StateGraph(State).add_node(remember).add_node(respond)
    graph.add_edge(START, "remember")
    graph.add_edge("remember", "respond")
    graph.add_edge("respond", END)
    app = graph.compile(store=store)
    app.invoke({"messages": [HumanMessage("remember: I drink green tea")], "user": "u1"})
    app.invoke({"messages": [HumanMessage("remember: my bike is red")], "user": "u1"})
    out = app.invoke({"messages": [HumanMessage("what tea do I drink?")], "user": "u1"})
    assert out["messages"][-1].content in ("Noted.", "You drink green tea.")
    assert prompts[-1].startswith("I drink green tea")
    other = app.invoke({"messages": [HumanMessage("what tea do I drink?")], "user": "u2"})
    assert other and prompts[-1] == ""  # u2's namespace holds nothing


def test_langmem_tools_over_memos_store(store: MemosStore) -> None:
    langmem = pytest.importorskip("langmem", reason="langmem is not installed (dev extra)")
    manage = langmem.create_manage_memory_tool(namespace=("memories", "u1"), store=store)
    search = langmem.create_search_memory_tool(namespace=("memories", "u1"), store=store)
    created = manage.invoke({"content": "User likes tea", "action": "create"})
    memory_id = created.split()[-1]
    manage.invoke({"content": "User likes jasmine tea", "action": "update", "id": memory_id})
    found = json.loads(search.invoke({"query": "which tea"}))
    assert [m["value"]["content"] for m in found] == ["User likes jasmine tea"]
    assert found[0]["key"] == memory_id and isinstance(found[0]["score"], float)
    asyncio.run(manage.ainvoke({"action": "delete", "id": memory_id}))
    assert json.loads(search.invoke({"query": "tea"})) == []


@pytest.mark.real_model
def test_readme_example_runs_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    run_example("langgraph")  # Memos() on this test's home, the default embedder
    assert capsys.readouterr().out.strip() == "I remember: Maya is allergic to peanuts"
