"""The Python SDK: ``Memos``, one object an agent loop keeps for its memory.

Read this file top to bottom to follow one ``add`` (validate → skip what is
stored → embed what is new → one write transaction → index) and one
``search`` (hand to :class:`memos.retrieval.Retriever`). Changes go through
:class:`memos.writer.Writer`.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import func, select

from memos import ingest, schema, store
from memos.activation import ActivationTier, SnapshotInfo
from memos.clock import Clock, SystemClock, as_utc
from memos.config import MemosConfig
from memos.consolidation import TrainConfig
from memos.context import approx_tokens, assemble_context
from memos.db import Database
from memos.embedder import Embedder, SentenceTransformerEmbedder
from memos.errors import InvalidInputError, UnknownItemError
from memos.filters import SearchFilter
from memos.generation import Reply, chat
from memos.indexes import IndexManager, Progress
from memos.lifecycle import StateChange, apply_decay, plan_decay
from memos.lm import LanguageModel, load_lm
from memos.models import Cube, Item, ItemTag, ItemVersion
from memos.parametric import AdapterInfo, ParametricTier
from memos.recall import RecallLog
from memos.records import (
    ContextBlock,
    CubeStats,
    ImportReport,
    MemoryRecord,
    MemoryVersion,
    SearchHit,
)
from memos.retrieval import Retriever
from memos.scheduler import BackgroundScheduler, Scheduler
from memos.writer import Writer, record_of

DEFAULT_CUBE = "default"


class Memos:
    """Agent memory backed by a database, an embedder and per-cube indexes.

    Args:
        config: settings; ``None`` reads ``MEMOS_*`` environment variables.
        embedder: an :class:`~memos.embedder.Embedder`; ``None`` loads
            ``config.embedder`` with sentence-transformers (on first use).
        clock: time source (inject a ``ManualClock`` to simulate time).
        token_counter: counts prompt tokens for :meth:`context`
            (default: about four characters a token).
        lm: an already loaded language model to share; ``None`` loads
            ``config.lm`` on first use (generation and snapshots only).

    Writes to a cube that does not exist create it; reads of an unknown cube
    raise ``UnknownCubeError``. Instances are safe to share between threads.
    """

    def __init__(
        self,
        config: MemosConfig | None = None,
        *,
        embedder: Embedder | None = None,
        clock: Clock | None = None,
        token_counter: Callable[[str], int] | None = None,
        lm: LanguageModel | None = None,
    ) -> None:
        self.config = config or MemosConfig.from_env()
        self.config.home.mkdir(parents=True, exist_ok=True)
        self.clock = clock or SystemClock()
        self.db = Database(self.config.url, self.config.busy_timeout_s)
        schema.ensure_current(self.db)
        self.embedder = embedder or SentenceTransformerEmbedder(
            self.config.embedder, batch_size=self.config.embed_batch_size
        )
        self.indexes = IndexManager(
            self.db,
            self.embedder,
            self.config.index_dir,
            self.config.index_kind,
            self.config.hnsw_m,
            self.config.key_fields,
            self.config.keyword_stemming,
        )
        self.recalls = RecallLog(self.db, self.config.retention, self.config.recall_flush_s)
        self.retriever = Retriever(self.db, self.embedder, self.indexes, self.config, self.recalls)
        self.writer = Writer(self.db, self.embedder, self.indexes, self.clock, self.config)
        self.count_tokens = token_counter or approx_tokens
        self._lm = lm
        self.activation = ActivationTier(self)
        self.parametric = ParametricTier(self)
        self.scheduler = Scheduler(self)
        self._background: BackgroundScheduler | None = None
        self._closed = False
        self._lock = threading.Lock()

    # -- lifecycle -----------------------------------------------------------

    def close(self) -> None:
        """Stop the background scheduler, write pending recalls, save changed
        indexes and release the database."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._background is not None:
            self._background.stop()
        self.recalls.close()
        self.indexes.save_all()
        self.db.dispose()

    def __enter__(self) -> Memos:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def lm(self) -> LanguageModel:
        """The language model, loaded on first use."""
        with self._lock:
            if self._lm is None:
                self._lm = load_lm(self.config.lm, self.config.home)
            return self._lm

    # -- cubes ---------------------------------------------------------------

    def create_cube(self, name: str, owner_id: str | None = None) -> str:
        """Create cube ``name`` (no error when it exists) and return its name."""
        ingest.check_cube_name(name)
        self.db.write(lambda s: store.ensure_cube(s, name, self.clock.now(), owner_id))
        return name

    def cubes(self) -> list[str]:
        """Names of all cubes."""
        with self.db.read() as session:
            return store.cube_names(session)

    def _cube(self, name: str) -> Cube:
        ingest.check_cube_name(name)
        with self.db.read() as session:
            return store.cube_by_name(session, name)

    # -- writing -------------------------------------------------------------

    def add(self, text: str, *, cube: str = DEFAULT_CUBE, **fields: Any) -> MemoryRecord:
        """Store one memory and return it (the stored one, if the text is already there).

        Keyword fields: ``metadata``, ``tags``, ``user_id``, ``agent_id``,
        ``source``, ``session_id``, ``speaker``, ``role``, ``event_time``,
        ``pinned`` (never decays), ``trust``, ``importance`` (0..1: a higher
        initial stability, so it fades more slowly). Text longer than
        ``config.max_text_chars`` raises ``TextTooLongError``; use
        :meth:`add_document` to chunk it.
        """
        item = ingest.from_mapping({"text": text, **fields}, self.config.max_text_chars, {})
        return self.writer.store([item], cube)[0]

    def add_many(
        self,
        entries: Iterable[str | Mapping[str, Any]],
        *,
        cube: str = DEFAULT_CUBE,
        progress: Progress | None = None,
        **defaults: Any,
    ) -> list[MemoryRecord]:
        """Store many memories with batched embedding; returns them in input order.

        Each entry is a string or a dict of :meth:`add`'s fields; ``defaults``
        apply to every entry. All entries are validated before any is stored.
        ``progress(done, total)`` is called after each batch.
        """
        items = [ingest.from_mapping(e, self.config.max_text_chars, defaults) for e in entries]
        return self.writer.store(items, cube, progress)

    def add_messages(
        self,
        messages: Iterable[Mapping[str, Any]],
        *,
        cube: str = DEFAULT_CUBE,
        prefix_speaker: bool = True,
        progress: Progress | None = None,
        **defaults: Any,
    ) -> list[MemoryRecord]:
        """Store each chat turn (``role``, ``content``, optional ``name``,
        ``timestamp``, ``metadata``) as one item keeping speaker and time."""
        items = ingest.from_messages(
            messages,
            max_chars=self.config.max_text_chars,
            prefix_speaker=prefix_speaker,
            defaults=defaults,
        )
        return self.writer.store(items, cube, progress)

    def add_document(
        self, text: str, *, cube: str = DEFAULT_CUBE, **defaults: Any
    ) -> list[MemoryRecord]:
        """Store a long text as overlapping chunks (``config.chunk_chars`` /
        ``chunk_overlap``), each an item whose metadata names the document."""
        items = ingest.from_document(
            text,
            chunk_chars=self.config.chunk_chars,
            overlap=self.config.chunk_overlap,
            max_chars=self.config.max_text_chars,
            defaults=defaults,
        )
        return self.writer.store(items, cube)

    def update(self, item_id: str, text: str | None = None, **changes: Any) -> MemoryRecord:
        """Make a new version of an item; the old one stays in :meth:`history`.

        Accepts ``text`` and ``metadata``, ``tags``, ``speaker``, ``role``,
        ``session_id``, ``event_time``, ``pinned``, ``trust`` (each replaces the
        old value) and ``reason`` (recorded). Raises ``DuplicateError`` when the
        new text equals another live item of the cube.
        """
        return self.writer.update(item_id, text, changes)

    def delete(self, item_id: str, reason: str = "user") -> MemoryRecord:
        """Soft-delete an item: hidden from search, kept until :meth:`purge`."""
        return self.writer.delete(item_id, reason)

    def restore(self, item_id: str) -> MemoryRecord:
        """Undo a soft delete (``DuplicateError`` if the text was stored again since)."""
        return self.writer.restore(item_id)

    def purge(self, item_id: str, reason: str = "user") -> None:
        """Remove an item and its history for good (only the audit event remains)."""
        self.writer.purge(item_id, reason)

    # -- reading -------------------------------------------------------------

    def get(self, item_id: str) -> MemoryRecord:
        """The item with this id (soft-deleted ones included, with state ``deleted``)."""
        self.recalls.flush()
        with self.db.read() as session:
            return record_of(session, store.item_by_id(session, item_id))

    def history(self, item_id: str) -> list[MemoryVersion]:
        """Every version of an item, oldest first."""
        with self.db.read() as session:
            item = store.item_by_id(session, item_id)
            return [store.to_version(v, item.id) for v in store.versions_of(session, item)]

    def search(
        self,
        query: str,
        *,
        cube: str = DEFAULT_CUBE,
        k: int = 10,
        filter: SearchFilter | Mapping[str, Any] | None = None,
        mode: str = "hybrid",
    ) -> list[SearchHit]:
        """The ``k`` memories that best match ``query``, with score parts.

        ``mode`` is ``"hybrid"`` (dense + keyword), ``"dense"`` or ``"keyword"``;
        ``filter`` is a :class:`SearchFilter` or a dict of its fields.
        """
        from memos.text import normalize_text

        text = normalize_text(query, self.config.max_text_chars)
        flt = SearchFilter.from_value(filter)
        return self.retriever.search(self._cube(cube), text, k, flt, mode, self.clock.now())

    def context(
        self,
        query: str,
        *,
        budget_tokens: int = 512,
        cube: str = DEFAULT_CUBE,
        k: int = 20,
        filter: SearchFilter | Mapping[str, Any] | None = None,
    ) -> ContextBlock:
        """The best memories for ``query`` as a prompt block within ``budget_tokens``.

        The memories in the block count as recalled (see :mod:`memos.recall`).
        """
        if (
            isinstance(budget_tokens, bool)
            or not isinstance(budget_tokens, int)
            or budget_tokens < 1
        ):
            raise InvalidInputError(f"budget_tokens={budget_tokens!r}; allowed: an integer >= 1")
        hits = self.search(query, cube=cube, k=k, filter=filter)
        block = assemble_context(hits, budget_tokens, self.count_tokens)
        self.recalls.record((item.id for item in block.items), self.clock.now())
        return block

    def mark_used(self, item_ids: Iterable[str]) -> None:
        """Count memories as recalled (the agent used them): their stability grows.

        Written in the background within ``config.recall_flush_s`` seconds;
        unknown ids raise ``UnknownItemError`` before anything is counted.
        """
        ids = [item_ids] if isinstance(item_ids, str) else list(item_ids)
        with self.db.read() as session:
            known = set(
                session.scalars(select(Item.id).where(Item.id.in_(ids), Item.state != "deleted"))
            )
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise UnknownItemError(f"no memory item with id {unknown[0]!r}")
        self.recalls.record(ids, self.clock.now())

    def list(
        self,
        *,
        cube: str = DEFAULT_CUBE,
        filter: SearchFilter | Mapping[str, Any] | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[MemoryRecord]:
        """Items of a cube, newest first."""
        if limit < 1 or offset < 0:
            raise InvalidInputError("limit must be >= 1 and offset >= 0")
        cube_row = self._cube(cube)
        flt = SearchFilter.from_value(filter)
        with self.db.read() as session:
            stmt = (
                select(Item)
                .where(flt.where(cube_row.pk))
                .order_by(Item.created_at.desc(), Item.pk.desc())
                .limit(limit)
                .offset(offset)
            )
            return [store.to_record(row, cube) for row in session.scalars(stmt)]

    def iterate(
        self,
        *,
        cube: str = DEFAULT_CUBE,
        filter: SearchFilter | Mapping[str, Any] | None = None,
        batch: int = 500,
    ) -> Iterator[MemoryRecord]:
        """Every matching item of a cube, oldest first, read in batches."""
        cube_row = self._cube(cube)
        flt = SearchFilter.from_value(filter)
        last = 0
        while True:
            with self.db.read() as session:
                stmt = (
                    select(Item)
                    .where(flt.where(cube_row.pk), Item.pk > last)
                    .order_by(Item.pk)
                    .limit(batch)
                )
                rows = session.scalars(stmt).all()
                records = [store.to_record(row, cube) for row in rows]
            if not rows:
                return
            last = rows[-1].pk
            yield from records

    def stats(self, cube: str = DEFAULT_CUBE) -> CubeStats:
        """Counts by state, versions, tags, embeddings and index figures of a cube."""
        self.recalls.flush()
        cube_row = self._cube(cube)
        with self.db.read() as session:
            by_state = dict(
                session.execute(
                    select(Item.state, func.count())
                    .where(Item.cube_pk == cube_row.pk)
                    .group_by(Item.state)
                ).all()
            )
            versions = session.scalar(
                select(func.count())
                .select_from(ItemVersion)
                .join(Item)
                .where(Item.cube_pk == cube_row.pk)
            )
            tags = session.scalar(
                select(func.count(func.distinct(ItemTag.tag)))
                .join(Item)
                .where(Item.cube_pk == cube_row.pk)
            )
            span = session.execute(
                select(func.min(Item.created_at), func.max(Item.created_at)).where(
                    Item.cube_pk == cube_row.pk
                )
            ).one()
            embedded = store.count_embedded(session, cube_row.pk, self.embedder.fingerprint)
        index = self.indexes.get(cube_row)
        return CubeStats(
            cube=cube,
            items=sum(by_state.values()),
            by_state=by_state,
            versions=int(versions or 0),
            tags=int(tags or 0),
            embedded=embedded,
            index_entries=len(index),
            index_revision=index.revision,
            revision=cube_row.revision,
            oldest=_utc(span[0]),
            newest=_utc(span[1]),
        )

    # -- generation and snapshots ------------------------------------------------

    def chat(
        self,
        message: str,
        *,
        cube: str = DEFAULT_CUBE,
        history: Sequence[dict[str, str]] = (),
        max_new_tokens: int = 64,
        use_snapshot: bool = True,
    ) -> Reply:
        """Answer with the cube's memories: from its newest valid KV snapshot when
        there is one (no prefill of the memories), else from plaintext context."""
        return chat(
            self,
            message,
            cube=cube,
            history=history,
            max_new_tokens=max_new_tokens,
            use_snapshot=use_snapshot,
        )

    def build_snapshot(
        self,
        cube: str = DEFAULT_CUBE,
        *,
        query: str | None = None,
        items: Sequence[MemoryRecord] | None = None,
        max_tokens: int = 1024,
        dtype: str = "float32",
    ) -> SnapshotInfo:
        """Snapshot the KV cache of a block of memories (the given items, the best
        for ``query``, or the newest), within ``max_tokens``."""
        return self.activation.build(
            cube, items=items, query=query, max_tokens=max_tokens, dtype=dtype
        )

    def consolidate(
        self,
        cube: str = DEFAULT_CUBE,
        *,
        items: Sequence[MemoryRecord] | None = None,
        filter: SearchFilter | Mapping[str, Any] | None = None,
        progress: Progress | None = None,
        **train_options: Any,
    ) -> AdapterInfo:
        """Train a side-GLU adapter on memories (given, or the cube's matching ``filter``).

        ``train_options`` are :class:`memos.consolidation.TrainConfig` fields
        (``rank``, ``layers``, ``steps``, ``lr``, ``locality_weight``, ...).
        Attach the result with ``mem.parametric.attach(info.id)``.
        """
        if items is None and filter is not None:
            items = list(self.iterate(cube=cube, filter=filter))
        return self.parametric.consolidate(
            cube, items=items, config=TrainConfig(**train_options), progress=progress
        )

    # -- lifecycle ------------------------------------------------------------

    def retention(self, item_id: str, at: datetime | None = None) -> float:
        """The item's retention R at ``at`` (default now) under ``config.retention``."""
        return self.config.retention.retention(self.get(item_id), as_utc(at) or self.clock.now())

    def decay(
        self, *, cube: str | None = None, now: datetime | None = None, dry_run: bool = False
    ) -> builtins.list[StateChange]:
        """Move items down the states their retention calls for (see :mod:`memos.lifecycle`).

        ``now`` defaults to the clock; with ``dry_run`` nothing is written.
        Returns the moves (planned ones on a dry run).
        """
        self.recalls.flush()
        at = as_utc(now) or self.clock.now()
        cube_pk = self._cube(cube).pk if cube is not None else None
        changes = plan_decay(self.db, self.config.retention, at, cube_pk)
        if not dry_run and changes:
            apply_decay(self.db, changes, at, "decay")
        return changes

    def start_scheduler(
        self, every_minutes: float | None = None, *, cube: str | None = None
    ) -> BackgroundScheduler:
        """Run the tier scheduler in a background thread every ``every_minutes``
        (default ``config.scheduler.interval_minutes``); :meth:`close` stops it."""
        with self._lock:
            if self._background is not None and self._background.running:
                raise InvalidInputError("the background scheduler is already running")
            minutes = every_minutes or self.config.scheduler.interval_minutes
            self._background = BackgroundScheduler(self, minutes * 60, cube).start()
            return self._background

    # -- maintenance ----------------------------------------------------------

    def rebuild_index(self, cube: str = DEFAULT_CUBE, progress: Progress | None = None) -> int:
        """Rebuild a cube's dense index from the database; returns its size."""
        cube_row = self._cube(cube)
        index = self.indexes.rebuild(cube_row, progress)
        self.db.write(
            lambda s: store.log_event(
                s,
                self.clock.now(),
                "index.rebuild",
                cube_pk=cube_row.pk,
                details={"entries": len(index)},
            )
        )
        return len(index)

    def export_jsonl(self, out: str | Path | IO[str], *, cube: str | None = None) -> int:
        """Write items (every state, with versions) as JSON lines; returns the count."""
        from memos.transfer import export_items

        return export_items(self, out, cube)

    def import_jsonl(
        self, source: str | Path | IO[str], *, cube: str | None = None
    ) -> ImportReport:
        """Read an export back (ids, versions and figures kept); existing ids are skipped."""
        from memos.transfer import import_items

        return import_items(self, source, cube)


def _utc(value: datetime | None) -> datetime | None:
    return as_utc(value)
