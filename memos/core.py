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
from memos.plaintext.embedder import Embedder, make_embedder
from memos.plaintext.indexes import IndexManager
from memos.store import schema
from memos.store.cubes import CubeRef
from memos.store.db import Database
from memos.validation import check_cube_name

if TYPE_CHECKING:
    from memos.lm import LanguageModel


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
        )
        self.recalls = RecallLog(self.db, config.retention, config.recall_flush_s)
        self._lm = lm
        self._lm_lock = threading.Lock()

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

    def cube(self, name: str) -> CubeRef:
        """The cube stored as ``name``; ``UnknownCubeError`` lists the known ones."""
        check_cube_name(name)
        with self.db.read() as session:
            return store.cube_ref(session, name)

    def close(self) -> None:
        """Write pending recalls, save changed indexes and release the database."""
        self.recalls.close()
        self.indexes.save_all()
        self.db.dispose()
