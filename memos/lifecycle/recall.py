"""Recall accounting: using a memory strengthens it.

A memory counts as recalled when ``Memos.context()`` hands it to the agent
(and when the caller says so with ``Memos.mark_used()``). Plain search hits do
not count: a search is the agent looking, not using, and counting every hit
of a broad query would keep whatever matches everything alive. A snapshot
used by ``chat`` touches the snapshot (its ``last_used_at``), not its items.

Recalls are buffered in memory and written in batches by a background thread
(every ``recall_flush_s`` seconds, or once ``FLUSH_AT`` are waiting), so the
read path never waits on a write. Each recall is applied with the time it
happened: access count +1, last access = that time, stability grown by the
retention policy, a ``recall`` event (retention at the time, stability
before and after: what ``memos plot retention`` replays), and a warm, cold or
archived item becomes active again.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Iterable, Mapping
from datetime import datetime
from functools import partial

from memos.retention import Figures, RetentionPolicy
from memos.store import RetentionFigures
from memos.store.db import Database
from memos.store.lifecycle import RecallsApplied, apply_recalls

log = logging.getLogger(__name__)
FLUSH_AT = 512


#: What one flush wrote: recalls, items they touched, items made active again.
FlushReport = RecallsApplied


class RecallLog:
    """Buffers recalls and writes them in batches (thread-safe)."""

    def __init__(self, db: Database, policy: RetentionPolicy, flush_every_s: float) -> None:
        self.db = db
        self.policy = policy
        self.flush_every_s = flush_every_s
        self._pending: list[tuple[str, datetime]] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, item_ids: Iterable[str], at: datetime) -> None:
        """Note that ``item_ids`` were recalled at ``at`` (written later)."""
        with self._lock:
            self._pending.extend((item_id, at) for item_id in item_ids)
            full = len(self._pending) >= FLUSH_AT
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="memos-recall", daemon=True)
                self._thread.start()
                # A program that never closes its Memos still keeps its last recalls.
                atexit.register(self._flush_at_exit)
        if full:
            self._wake.set()

    def pending(self) -> int:
        """Recalls waiting to be written."""
        with self._lock:
            return len(self._pending)

    def overlay(self, figures: Mapping[str, Figures]) -> dict[str, Figures]:
        """``figures`` (by item id) with the waiting recalls applied, for ranking."""
        with self._lock:
            waiting = [(i, at) for i, at in self._pending if i in figures]
        out = dict(figures)
        for item_id, at in sorted(waiting, key=lambda pair: pair[1]):
            f = out[item_id]
            if f.last_accessed_at is None or at >= f.last_accessed_at:
                stability = self.policy.after_recall(f, at)
                out[item_id] = RetentionFigures(f.created_at, at, stability, f.pinned)
        return out

    def flush(self) -> FlushReport:
        """Write every waiting recall now (one transaction)."""
        with self._write_lock:
            with self._lock:
                batch, self._pending = self._pending, []
            if not batch:
                return FlushReport(0, 0, 0)
            try:
                return self.db.write(partial(apply_recalls, batch=batch, policy=self.policy))
            except Exception:
                with self._lock:  # keep them for the next try
                    self._pending[:0] = batch
                raise

    def close(self) -> None:
        """Stop the background writer and write what is waiting."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=30)
        self.flush()

    def _flush_at_exit(self) -> None:
        if not self._stop.is_set():
            try:
                self.flush()
            except Exception:  # the interpreter is exiting; say so, never raise
                log.warning("could not write %d pending recall(s) at exit", self.pending())

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_every_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.flush()
            except Exception:  # the next tick retries; never kill the thread
                log.exception("writing recall accounting failed; will retry")
