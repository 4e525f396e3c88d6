"""The service under load keeps its promises: keys revoked at once in every worker,
read-your-writes across workers, batched adds that fail one by one.

``memos serve`` runs as a real process with two workers, on SQLite and on
PostgreSQL: the key cache and the cube-revision cache are only as good as the
change feed behind them (:mod:`memos.store.changes`), and that differs by
backend.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from helpers import open_memos
from service_helpers import ServeProcess, bearer

from memos.client import Memos
from memos.errors import EmbedderError
from memos.plaintext import ingest
from memos.plaintext.embedder import HashingEmbedder
from memos.service import keys
from memos.service.batching import AddBatcher
from memos.service.executor import WRITE, WorkQueue

WORKERS = 2


@pytest.fixture
def served(db_url: str, tmp_path: Path) -> Iterator[tuple[str, ServeProcess, Memos]]:
    home = tmp_path / "home"
    store = open_memos(home, db_url)
    key, _ = keys.create_key(store.db, "acme", ("read", "write"), store.clock.now())
    with ServeProcess(home, workers=WORKERS, db_url=db_url) as server:
        yield key, server, store
    store.close()


def test_a_revoked_key_fails_on_its_next_request_in_every_worker(
    served: tuple[str, ServeProcess, Memos],
) -> None:
    key, server, store = served
    target, info = keys.create_key(store.db, "acme", ("read",), store.clock.now())
    # many keep-alive connections: the kernel spreads them over both workers,
    # and each worker has the key cached before the revocation
    clients = [httpx.Client(base_url=server.url, headers=bearer(target)) for _ in range(12)]
    try:
        for client in clients:
            for _ in range(3):
                assert client.get("/v1/cubes").status_code == 200
        keys.revoke_key(store.db, info.id, store.clock.now())
        for client in clients:
            response = client.get("/v1/cubes")
            assert response.status_code == 401 and "revoked" in response.json()["message"]
    finally:
        for client in clients:
            client.close()
    assert httpx.get(f"{server.url}/v1/cubes", headers=bearer(key)).status_code == 200


def test_a_write_answered_by_one_worker_is_read_by_the_next_request_anywhere(
    served: tuple[str, ServeProcess, Memos],
) -> None:
    key, server, _ = served
    writer = httpx.Client(base_url=server.url, headers=bearer(key))
    readers = [httpx.Client(base_url=server.url, headers=bearer(key)) for _ in range(6)]
    try:
        for reader in readers:  # each reader connection's worker has the cube indexed
            reader.post("/v1/cubes/notes/search", json={"query": "warm up"})
        for n in range(20):
            text = f"the courier left parcel number {n} at the blue door"
            added = writer.post("/v1/cubes/notes/items", json={"text": text})
            assert added.status_code == 201
            for reader in readers:
                hits = reader.post(
                    "/v1/cubes/notes/search", json={"query": f"parcel number {n}", "k": 3}
                ).json()
                assert added.json()["id"] in [h["item"]["id"] for h in hits], (n, hits)
    finally:
        writer.close()
        for reader in readers:
            reader.close()


def test_concurrent_adds_are_batched_and_a_bad_one_gets_its_own_4xx(
    served: tuple[str, ServeProcess, Memos],
) -> None:
    key, server, _ = served
    bodies = [json.dumps({"text": f"fact {n} of the batch"}).encode() for n in range(15)]
    bad = {3: b'{"text": "fine", "metadata": {"n": 1e999}}', 8: b'{"text": "  "}'}
    for n, body in sorted(bad.items()):
        bodies.insert(n, body)
    answers: dict[int, httpx.Response] = {}

    def add(n: int) -> None:
        with httpx.Client(base_url=server.url, headers=bearer(key), timeout=60) as client:
            answers[n] = client.post(
                "/v1/cubes/batch/items",
                content=bodies[n],
                headers={"Content-Type": "application/json"},
            )

    threads = [threading.Thread(target=add, args=(n,)) for n in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for n, response in answers.items():
        if n in bad:
            assert response.status_code == 400, (n, response.text)
            assert response.json()["error"] in ("InvalidInputError", "InvalidTextError")
        else:
            assert response.status_code == 201, (n, response.text)
    listed = httpx.get(
        f"{server.url}/v1/cubes/batch/items", params={"limit": 100}, headers=bearer(key)
    ).json()
    assert sorted(i["text"] for i in listed) == sorted(f"fact {n} of the batch" for n in range(15))


def test_the_same_text_added_concurrently_is_stored_once(
    served: tuple[str, ServeProcess, Memos],
) -> None:
    key, server, _ = served
    answers: list[httpx.Response] = []

    def add() -> None:
        with httpx.Client(base_url=server.url, headers=bearer(key), timeout=60) as client:
            answers.append(client.post("/v1/cubes/twice/items", json={"text": "Ana swims at 7"}))

    threads = [threading.Thread(target=add) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status_code for r in answers] == [201] * 8, [r.text for r in answers]
    assert len({r.json()["id"] for r in answers}) == 1
    listed = httpx.get(f"{server.url}/v1/cubes/twice/items", headers=bearer(key)).json()
    assert [i["text"] for i in listed] == ["Ana swims at 7"]


# -- the batcher on its own: a batch that fails as a whole fails add by add ------------


class FussyEmbedder(HashingEmbedder):
    """Refuses any call that holds the word "boom" (as a faulty model might)."""

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if any("boom" in text for text in texts):
            raise EmbedderError("the model refused this batch")
        return super().encode(texts)


def test_a_failing_batch_is_retried_add_by_add(tmp_path: Path) -> None:
    from memos.clock import ManualClock
    from memos.config import MemosConfig

    mem = Memos(MemosConfig(home=tmp_path / "home"), embedder=FussyEmbedder(), clock=ManualClock())
    work = WorkQueue(1)
    batcher = AddBatcher(work, mem.writer.store, window_s=0.05)
    texts = ["first good fact", "a boom in the middle", "second good fact", "third good fact"]
    items = [ingest.new_item(t, max_chars=1000) for t in texts]

    async def run() -> list[Any]:
        return await asyncio.gather(
            *(batcher.add("c", item) for item in items), return_exceptions=True
        )

    outcomes = asyncio.run(run())
    assert batcher.batches == 1 and batcher.items == 4  # they were one batch
    assert isinstance(outcomes[1], EmbedderError)
    assert [o.text for n, o in enumerate(outcomes) if n != 1] == [
        "first good fact",
        "second good fact",
        "third good fact",
    ]
    assert sorted(r.text for r in mem.list(cube="c")) == sorted(t for t in texts if "boom" not in t)
    work.close()
    mem.close()


def test_reads_go_before_queued_writes_but_writes_are_never_starved() -> None:
    work = WorkQueue(1, write_after_s=0.2)
    order: list[str] = []
    gate = threading.Event()

    async def run() -> None:
        blocker = asyncio.ensure_future(work.run(gate.wait, WRITE))
        await asyncio.sleep(0.05)
        writes = [asyncio.ensure_future(work.run(lambda: order.append("w"), WRITE))]
        reads = [
            asyncio.ensure_future(work.run(lambda n=n: order.append(f"r{n}")))  # type: ignore[misc]
            for n in range(3)
        ]
        gate.set()
        await asyncio.gather(blocker, *writes, *reads)

    asyncio.run(run())
    assert order == ["r0", "r1", "r2", "w"]
    work.close()
