"""The service as real processes on 127.0.0.1: ``memos serve`` with two workers,
``memos mcp`` over stdio, the remote SDK and the mcp package's own clients."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from helpers import open_memos
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from memos.cli.main import app as cli
from service_helpers import SECRET, ServeProcess, bearer, tenants
from typer.testing import CliRunner

from memos.client import Memos
from memos.errors import AuthError, UnknownItemError
from memos.service import keys


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, ServeProcess]]:
    home = tmp_path_factory.mktemp("served") / "home"
    world = tenants(home)
    world.mem.close()
    with ServeProcess(home, workers=2) as server:
        yield world, server


def test_remote_sdk_against_memos_serve(served: tuple[Any, ServeProcess]) -> None:
    world, server = served
    with Memos.connect(server.url, api_key=world.alice) as alice:
        assert alice.search("spare key", cube="notes")[0].item.text == SECRET
        record = alice.add("alice's second fact", cube="notes")
        assert alice.get(record.id) == record
    with Memos.connect(server.url, api_key=world.bob) as bob:
        with pytest.raises(UnknownItemError):
            bob.get(world.item_id)
        assert bob.cubes() == [] or SECRET not in str(bob.list(cube="notes"))


def test_revocation_holds_in_every_worker_at_once(served: tuple[Any, ServeProcess]) -> None:
    _, server = served
    store = open_memos(server.home)
    key, info = keys.create_key(store.db, "alice", ("read",), store.clock.now())
    with Memos.connect(server.url, api_key=key) as client:
        for _ in range(6):  # keep-alive and new connections reach both workers
            assert client.cubes() == ["notes"]
        keys.revoke_key(store.db, info.id, store.clock.now())
        for _ in range(6):
            with pytest.raises(AuthError, match="revoked"):
                client.cubes()
    store.close()


def test_concurrent_adds_of_one_text_store_it_once(served: tuple[Any, ServeProcess]) -> None:
    world, server = served
    ids: list[str] = []

    def add() -> None:
        response = httpx.post(
            f"{server.url}/v1/cubes/race/items",
            json={"text": "one text, many writers"},
            headers=bearer(world.bob),
            timeout=60,
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])

    threads = [threading.Thread(target=add) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(ids) == 8 and len(set(ids)) == 1
    listed = httpx.get(f"{server.url}/v1/cubes/race/items", headers=bearer(world.bob)).json()
    assert [item["text"] for item in listed] == ["one text, many writers"]


async def _mcp(url: str, key: str | None, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    headers = bearer(key) if key else {}
    results = []
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client,
    ):
        for name, args in calls:
            results.append(await client.call_tool(name, args))
        results.append((await client.list_tools()).tools)
    return results


def test_mcp_over_streamable_http_on_memos_serve(served: tuple[Any, ServeProcess]) -> None:
    world, server = served

    async def main() -> None:
        stored, found, tools = await _mcp(
            server.url,
            world.alice,
            [
                ("remember", {"text": "alice's cat is called Miso", "cube": "notes"}),
                ("recall", {"query": "what is the cat called", "cube": "notes"}),
            ],
        )
        assert {"remember", "recall", "forget"} <= {tool.name for tool in tools}
        assert found.structured_content["hits"][0]["text"] == "alice's cat is called Miso"
        item_id = stored.structured_content["id"]
        bobs = await _mcp(
            server.url,
            world.bob,
            [
                ("recall", {"query": "cat Miso spare key", "cube": "notes"}),
                ("forget", {"id": item_id}),
            ],
        )
        assert "Miso" not in str(bobs[0].content) and SECRET not in str(bobs[0].content)
        assert bobs[1].is_error
        (forgotten, recall_after, _) = await _mcp(
            server.url,
            world.alice,
            [("forget", {"id": item_id}), ("recall", {"query": "cat Miso", "cube": "notes"})],
        )
        assert forgotten.structured_content["state"] == "deleted"
        assert "Miso" not in str(recall_after.structured_content)
        with pytest.raises(Exception):  # noqa: B017  (the client raises a group on a 401)
            await _mcp(server.url, None, [("recall", {"query": "cat", "cube": "notes"})])

    anyio.run(main)


def _stdio(home: Path, tenant: str) -> StdioServerParameters:
    args = ["-m", "memos.cli.main", "--home", str(home), "--embedder", "hashing"]
    return StdioServerParameters(
        command=sys.executable, args=[*args, "mcp", "--tenant", tenant], env=dict(os.environ)
    )


def test_mcp_over_stdio_four_processes_at_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    open_memos(home).close()
    per = 8

    async def one(worker: int) -> None:
        async with Client(_stdio(home, "alice")) as client:
            tools = {tool.name for tool in (await client.list_tools()).tools}
            assert {"remember", "recall", "forget", "context", "history"} <= tools
            for i in range(per):
                result = await client.call_tool("remember", {"text": f"worker {worker} fact {i}"})
                assert not result.is_error, result.content
            shared = await client.call_tool("remember", {"text": "every worker says this"})
            assert not shared.is_error, shared.content
            found = await client.call_tool("recall", {"query": f"worker {worker} fact 3", "k": 1})
            assert found.structured_content["hits"][0]["text"] == f"worker {worker} fact 3"

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for worker in range(4):
                group.start_soon(one, worker)
        async with Client(_stdio(home, "bob")) as bob:
            hits = await bob.call_tool("recall", {"query": "worker fact"})
            assert hits.is_error and "UnknownCubeError" in hits.content[0].text

    anyio.run(main)
    mem = open_memos(home)
    texts = [r.text for r in mem.list(cube="alice/default", limit=1000)]
    assert len(texts) == 4 * per + 1 and texts.count("every worker says this") == 1
    mem.close()


def test_sigkill_a_worker_under_load_loses_no_acknowledged_write(tmp_path: Path) -> None:
    home = tmp_path / "home"
    world = tenants(home)
    world.mem.close()
    acked: list[str] = []
    after_kill: list[str] = []
    killed = threading.Event()
    stop = threading.Event()

    with ServeProcess(home, workers=2) as server:

        def load(n: int) -> None:
            with httpx.Client(base_url=server.url, headers=bearer(world.alice), timeout=30) as c:
                for i in range(10_000):
                    if stop.is_set():
                        return
                    try:
                        r = c.post("/v1/cubes/load/items", json={"text": f"client {n} write {i}"})
                    except httpx.HTTPError:
                        continue  # in flight on the killed worker: not acknowledged
                    if r.status_code == 201:
                        (after_kill if killed.is_set() else acked).append(r.json()["id"])

        threads = [threading.Thread(target=load, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while len(acked) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        victim = server.worker_pids()[0]
        os.kill(victim, signal.SIGKILL)
        killed.set()
        deadline = time.monotonic() + 30
        while len(after_kill) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        assert len(after_kill) >= 20, "the service stopped serving after a worker died"
        with httpx.Client(base_url=server.url, headers=bearer(world.alice), timeout=30) as c:
            for item_id in acked + after_kill:
                assert c.get(f"/v1/items/{item_id}").status_code == 200, item_id
            assert c.get("/healthz").status_code == 200


def test_no_auth_is_refused_off_loopback(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["--home", str(tmp_path / "h"), "serve", "--host", "0.0.0.0", "--no-auth"]
    )
    assert result.exit_code == 1 and "only on a loopback address" in result.stderr
