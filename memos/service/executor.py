"""Where a worker runs memory work: off the event loop, on few threads, reads first.

Memory work is CPU-bound Python (FAISS and BM25 scoring, SQLAlchemy, pydantic)
under one GIL per worker process, so more threads make it slower, not faster.
Measured on 2 cores, one worker, 8 clients, hashing embedder, SQLite: 40
threads (anyio's default) served 99 ops/s at 11.3 ms of CPU per op; 4 threads
95 ops/s; 2 threads 123 ops/s; 1 thread 180 ops/s at 5.4 ms per op. So each
worker runs its memory work on ``threads`` threads (default 1) and the event
loop only parses, routes and answers.

Work comes in two lanes. ``read`` (searches, context, gets) goes first; ``write``
(batches of adds, updates, deletes) waits while reads are queued, so a burst of
writes does not put every search behind it, and writes batch up meanwhile
(:mod:`memos.service.batching`). A write is never starved: once the oldest
queued write has waited ``write_after_s``, it goes next.

A read may name the text it will embed (a search's query). When a thread takes
such a read, it first hands every such text queued to ``prime`` (the store's
:class:`~memos.plaintext.embedder.QueryVectors`), so a burst of searches makes
one embedding call, not one each. Measured with the default embedder, 32
clients, 2 workers of one torch thread each, SQLite, 20 s: 25.9 ops/s with one
embedding call a search, 133 ops/s with the queued searches embedded together.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
READ, WRITE = "read", "write"


class _Task:
    __slots__ = ("done", "fn", "loop", "queued_at", "text")

    def __init__(
        self, fn: Callable[[], Any], loop: asyncio.AbstractEventLoop, text: str | None
    ) -> None:
        self.fn = fn
        self.loop = loop
        self.text = text
        self.done: asyncio.Future[Any] = loop.create_future()
        self.queued_at = time.monotonic()

    def run(self) -> None:
        try:
            result, error = self.fn(), None
        except BaseException as exc:  # handed to the awaiting request
            result, error = None, exc
        settle_threadsafe(self.done, result, error)


def settle_threadsafe(
    future: asyncio.Future[Any], result: Any, error: BaseException | None
) -> None:
    """From a worker thread: :func:`settle` ``future`` on its loop. A closed loop
    (shutdown) has nobody awaiting the answer, so it is dropped."""
    with contextlib.suppress(RuntimeError):
        future.get_loop().call_soon_threadsafe(settle, future, result, error)


def settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """Give an awaited future its result or error (on its loop), unless it was cancelled."""
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class WorkQueue:
    """Threads that run memory work for the event loop, reads before writes.

    Args:
        threads: how many threads run work (1 is fastest for CPU-bound work).
        write_after_s: the longest a queued write waits behind reads.
        prime: given the texts queued reads will embed, embeds them ahead.
    """

    def __init__(
        self,
        threads: int = 1,
        write_after_s: float = 0.05,
        prime: Callable[[list[str]], None] | None = None,
    ) -> None:
        self.write_after_s = write_after_s
        self.prime = prime
        self._lanes: dict[str, collections.deque[_Task]] = {
            READ: collections.deque(),
            WRITE: collections.deque(),
        }
        self._ready = threading.Condition()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"memos-work-{n}", daemon=True)
            for n in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    async def run(self, fn: Callable[[], T], lane: str = READ, embeds: str | None = None) -> T:
        """Run ``fn`` on a worker thread and return (or raise) what it does;
        ``embeds`` is the text it will embed, if any (see the module docs)."""
        task = _Task(fn, asyncio.get_running_loop(), embeds)
        with self._ready:
            if self._closed:
                raise RuntimeError("the work queue is closed")
            self._lanes[lane].append(task)
            self._ready.notify()
        result: T = await task.done
        return result

    def pending(self) -> int:
        """Tasks queued and not yet started."""
        with self._ready:
            return sum(len(lane) for lane in self._lanes.values())

    def _next(self) -> _Task | None:
        reads, writes = self._lanes[READ], self._lanes[WRITE]
        if writes and (not reads or time.monotonic() - writes[0].queued_at >= self.write_after_s):
            return writes.popleft()
        return reads.popleft() if reads else None

    def _work(self) -> None:
        while True:
            with self._ready:
                task = self._next()
                while task is None:
                    if self._closed:
                        return
                    self._ready.wait()
                    task = self._next()
                texts = self._texts_to_embed(task)
            if texts and self.prime is not None:
                # on failure each read embeds its own text again, and reports
                with contextlib.suppress(Exception):
                    self.prime(texts)
            task.run()

    def _texts_to_embed(self, task: _Task) -> list[str]:
        """(Under the lock) the texts of ``task`` and the queued reads, each once."""
        if task.text is None or self.prime is None:
            return []
        tasks = [task, *self._lanes[READ]]
        texts = [t.text for t in tasks if t.text is not None]
        for t in tasks:
            t.text = None
        return texts

    def close(self) -> None:
        """Finish the queued work, then stop the threads."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()
        for thread in self._threads:
            thread.join(timeout=30)
