"""Whether anything was committed to the database since a cache was filled: asked
for free when nothing changed.

A :class:`ChangeFeed` keeps a local counter, :meth:`ChangeFeed.version`, that
moves whenever another writer may have committed. A cache stamped with the
version it was filled at is valid while the version stays the same; when it
moves, the cache re-reads what it holds (cube revisions, API keys).

- SQLite: ``PRAGMA data_version`` on a connection of the feed's own. SQLite
  changes it on every commit by any other connection, of this process or
  another (it reads the WAL index's shared memory: no file read, a few
  microseconds). Asking is synchronous, so a write committed before a request
  arrives is always seen by it: read-your-writes holds across workers.
- PostgreSQL: every write transaction sends ``NOTIFY memos_changes``
  (:class:`memos.store.db.Database` does, delivered at commit), and a thread
  of the feed ``LISTEN``s on its own connection and moves the counter. Asking
  costs one ``select`` on that connection's socket: a notification that has
  arrived but not yet been read counts too. It arrives within about a
  millisecond of the commit on a local network, before the writer's client can
  have its answer and send the next request, so read-your-writes holds across
  workers in practice (not by a guarantee: the listener's backend sends it
  after the commit returns).
"""

from __future__ import annotations

import logging
import select
import sqlite3
import threading
import time
from pathlib import Path
from typing import Protocol

from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)
CHANNEL = "memos_changes"


class ChangeFeed(Protocol):
    """A counter that moves when the database may have changed.

    ``synchronous``: a commit that returned before :meth:`version` is asked is
    always counted (SQLite). PostgreSQL's notifications arrive a moment after
    the commit, so a cache that must never serve a stale answer (API keys)
    reads the database itself there.
    """

    synchronous: bool

    def version(self) -> int:
        """The current version (compare with the one a cache was filled at)."""
        ...

    def close(self) -> None:
        """Release the feed's connection (and stop its thread)."""
        ...


class SqliteFeed:
    """``PRAGMA data_version`` on a private connection (see the module docs)."""

    synchronous = True

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._raw = self._read()
        self._version = 0

    def _read(self) -> int:
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def version(self) -> int:
        with self._lock:
            raw = self._read()
            if raw != self._raw:
                self._raw = raw
                self._version += 1
            return self._version

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class PostgresFeed:
    """``LISTEN memos_changes`` in a thread of its own (see the module docs).

    While the listening connection is down the feed counts as always changed
    (every cache re-reads), so a lost notification can never serve stale data.
    """

    synchronous = False

    def __init__(self, url: str) -> None:
        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._version = 0
        self._healthy = False
        self._fd: int | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="memos-changes", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=10)

    def version(self) -> int:
        if not self._healthy:
            self._version += 1
        elif self._fd is not None and select.select([self._fd], [], [], 0)[0]:
            # a notification is on the socket and the thread has not read it yet
            self._version += 1
        return self._version

    def _listen(self) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(self._dsn, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._fd = conn.fileno()
                    self._healthy = True
                    self._version += 1  # whatever happened while we were away
                    self._ready.set()
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=0.5, stop_after=256):
                            self._version += 1
            except Exception:  # a dropped connection: count as changed, reconnect
                self._healthy, self._fd = False, None
                self._ready.set()
                log.warning("change feed lost its PostgreSQL connection; reconnecting")
                time.sleep(0.5)
            self._healthy, self._fd = False, None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def feed_for(url: str, sqlite_path: Path | None) -> ChangeFeed:
    """The feed for a database URL (SQLite file or PostgreSQL)."""
    if sqlite_path is not None:
        return SqliteFeed(sqlite_path)
    return PostgresFeed(url)
