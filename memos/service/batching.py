"""Concurrent adds of one worker, stored together: one embedding call and one
transaction per cube for every add waiting when the batch runs.

Each request validates its own item first (so a bad one gets its own typed
4xx and never joins a batch), then waits on a future. The first add of a batch
queues a *drain* on the work queue's write lane after ``window_s``; when the
drain runs it takes every add waiting at that moment, so batches grow with the
load instead of being cut at a fixed size. A request is answered only after
the transaction holding its item has committed. The same text added
concurrently is stored once (the writer keys items by content hash), and both
requests get that record. When a batch fails as a whole, its adds are retried
one by one, so each request gets its own outcome.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from memos.records import MemoryRecord, NewItem
from memos.service.executor import WRITE, WorkQueue, settle_threadsafe

Store = Callable[[Sequence[NewItem], str], list[MemoryRecord]]


class AddBatcher:
    """Gathers a worker's adds (see the module docs).

    Args:
        work: the worker's work queue (batches run on its write lane).
        store: stores validated items in a stored cube, in input order
            (``Writer.store``).
        window_s: how long the first add of a batch waits for company.
    """

    def __init__(self, work: WorkQueue, store: Store, window_s: float = 0.005) -> None:
        self.work = work
        self.store = store
        self.window_s = window_s
        self._lock = threading.Lock()
        self._waiting: list[tuple[str, NewItem, asyncio.Future[MemoryRecord]]] = []
        self._drain_queued = False
        self.batches = 0
        self.items = 0

    async def add(self, cube: str, item: NewItem) -> MemoryRecord:
        """Store ``item`` in the stored cube ``cube`` with whatever else is waiting."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[MemoryRecord] = loop.create_future()
        with self._lock:
            self._waiting.append((cube, item, future))
            first = not self._drain_queued
            self._drain_queued = True
        if first:
            loop.call_later(self.window_s, self._queue_drain, loop)
        return await future

    def _queue_drain(self, loop: asyncio.AbstractEventLoop) -> None:
        drain = loop.create_task(self.work.run(self._drain, WRITE))
        drain.add_done_callback(_swallow)

    def _drain(self) -> None:
        """On the worker thread: store every add waiting now, cube by cube."""
        with self._lock:
            batch, self._waiting = self._waiting, []
            self._drain_queued = False
        by_cube: dict[str, list[tuple[NewItem, asyncio.Future[MemoryRecord]]]] = defaultdict(list)
        for cube, item, future in batch:
            by_cube[cube].append((item, future))
        for cube, entries in by_cube.items():
            self.batches += 1
            self.items += len(entries)
            try:
                records = self.store([item for item, _ in entries], cube)
            except Exception:  # one bad add must not fail its batch-mates
                for item, future in entries:
                    self._store_one(cube, item, future)
            else:
                for (_, future), record in zip(entries, records, strict=True):
                    settle_threadsafe(future, record, None)

    def _store_one(self, cube: str, item: NewItem, future: asyncio.Future[MemoryRecord]) -> None:
        try:
            (record,) = self.store([item], cube)
        except Exception as exc:  # handed to its own request
            settle_threadsafe(future, None, exc)
        else:
            settle_threadsafe(future, record, None)


def _swallow(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # every add's outcome went to its own future
