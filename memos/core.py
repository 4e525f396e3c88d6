"""The seam every part of memos takes: one store's shared services.

A :class:`Core` holds what the tiers, the scheduler and the service doors need
and nothing they compose: the config (the one place settings are read from),
the clock, the database, the embedder, the per-cube indexes, the recall log
and the language model (loaded on first use). Parts take a ``Core`` (or the
few items of it they use), never the :class:`memos.client.Memos` façade, so
each can be built and tested on its own; the façade composes them.

Nothing here loads a heavy backend: the embedder, FAISS and the language
model load when first used.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from memos import store
from memos.clock import Clock, SystemClock
from memos.config import MemosConfig
from memos.lifecycle.recall import RecallLog
from memos.plaintext.embedder import Embedder, QueryVectors, make_embedder
from memos.plaintext.indexes import IndexManager
from memos.store import schema
from memos.store.artifact_files import ArtifactFiles
from memos.store.changes import ChangeFeed, feed_for
from memos.store.cubes import CubeRef
from memos.store.db import Database
from memos.validation import check_cube_name

if TYPE_CHECKING:
    from memos.lm import LanguageModel

#: Most cube rows the change-feed cache keeps (it starts over when full).
CUBE_CACHE_SIZE = 10_000


class Core:
    """Config, clock, database, embedder, indexes, recall log and LM of one store.

    Args:
        config: settings; read by every part from here (``core.config``).
        embedder: ``None`` loads ``config.embedder`` on first use.
        clock: time source (a ``ManualClock`` simulates time).
        lm: an already loaded language model to share; ``None`` loads
            ``config.lm`` on first use.

    Opening a core brings the database schema to head.
    """

    def __init__(
        self,
        config: MemosConfig,
        *,
        embedder: Embedder | None = None,
        clock: Clock | None = None,
        lm: LanguageModel | None = None,
    ) -> None:
        self.config = config
        config.home.mkdir(parents=True, exist_ok=True)
        self.clock: Clock = clock or SystemClock()
        self.db = Database(config.url, config.busy_timeout_s)
        schema.ensure_current(self.db)
        self.embedder: Embedder = embedder or make_embedder(
            config.embedder, config.embed_batch_size
        )
        self.indexes = IndexManager(
            self.db,
            self.embedder,
            config.index_dir,
            config.index_kind,
            config.hnsw_m,
            config.key_fields,
            config.keyword_stemming,
            budget_bytes=int(config.index_cache_mb * 2**20) if config.index_cache_mb else None,
        )
        self.query_vectors = QueryVectors(self.embedder)
        self.recalls = RecallLog(self.db, config.retention, config.recall_flush_s)
        self.artifact_files = ArtifactFiles(config.home, config.artifacts)
        self._lm = lm
        self._lm_lock = threading.Lock()
        self.changes: ChangeFeed | None = None
        self._cubes: dict[str, tuple[int, CubeRef]] = {}

    @property
    def lm(self) -> LanguageModel:
        """The language model, loaded on first use (thread-safe)."""
        with self._lm_lock:
            if self._lm is None:
                from memos.lm import load_lm

                self._lm = load_lm(self.config.lm, self.config.home)
            return self._lm

    @property
    def lm_loaded(self) -> bool:
        """Whether the language model is in memory (nothing loads it)."""
        return self._lm is not None

    def watch_changes(self) -> ChangeFeed:
        """Start reading cube rows through a cache kept valid by a change feed
        (:mod:`memos.store.changes`): a cube is read from the database only when
        something was committed since it was last read. The service turns it on;
        the embedded SDK reads the row each time."""
        if self.changes is None:
            self.changes = feed_for(self.db.url, self.db.sqlite_path)
        return self.changes

    def cube(self, name: str) -> CubeRef:
        """The cube stored as ``name``; ``UnknownCubeError`` lists the known ones."""
        check_cube_name(name)
        version = self.changes.version() if self.changes is not None else None
        cached = self._cubes.get(name)
        if version is not None and cached is not None and cached[0] == version:
            return cached[1]
        with self.db.read() as session:
            ref = store.cube_ref(session, name)
        if version is not None:
            if len(self._cubes) >= CUBE_CACHE_SIZE:
                self._cubes.clear()
            self._cubes[name] = (version, ref)
        return ref

    def close(self) -> None:
        """Write pending recalls, save changed indexes and release the database."""
        self.recalls.close()
        self.indexes.save_all()
        if self.changes is not None:
            self.changes.close()
        self.db.dispose()
