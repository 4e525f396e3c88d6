"""The Python SDK: ``Memos``, one object an agent loop keeps for its memory.

Read this file top to bottom to follow one ``add`` (validate → skip what is
stored → embed what is new → one write transaction → index) and one
``search`` (hand to :class:`memos.plaintext.retrieval.Retriever`). Changes go through
:class:`memos.plaintext.writer.Writer`.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sqlalchemy import select

from memos import store
from memos.clock import Clock, as_utc
from memos.config import MemosConfig
from memos.core import Core
from memos.errors import InvalidInputError, UnknownItemError
from memos.lifecycle.decay import StateChange, apply_decay, plan_decay
from memos.model_tiers import DEFAULT_CUBE, ModelTiers
from memos.plaintext import ingest
from memos.plaintext.context import approx_tokens, assemble_context
from memos.plaintext.filters import SearchFilter
from memos.plaintext.retrieval import Retriever
from memos.plaintext.text import check_string, normalize_text, string_problem
from memos.plaintext.writer import Writer
from memos.records import (
    ContextBlock,
    CubeStats,
    ImportReport,
    MemoryRecord,
    MemoryVersion,
    SearchHit,
    State,
)
from memos.scheduler.runner import Scheduler
from memos.store.models import Item

if TYPE_CHECKING:
    from memos.lm import LanguageModel
    from memos.plaintext.embedder import Embedder
    from memos.plaintext.indexes import IndexManager, Progress
    from memos.service.remote import RemoteMemos
    from memos.store.db import Database


class Memos(ModelTiers):
    """Agent memory backed by a database, an embedder and per-cube indexes.

    Args:
        config: settings; ``None`` reads ``MEMOS_*`` environment variables.
        embedder: an :class:`~memos.plaintext.embedder.Embedder`; ``None`` loads
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
        self.core = Core(config or MemosConfig.from_env(), embedder=embedder, clock=clock, lm=lm)
        self.writer = Writer(self.core)
        self.retriever = Retriever(self.core)
        self.count_tokens = token_counter or approx_tokens
        self.scheduler = Scheduler(self.core, lambda: self.activation, lambda: self.parametric)
        ModelTiers.__init__(self, self.core)
        self._closed = False
        self._lock = threading.Lock()

    @staticmethod
    def connect(url: str, *, api_key: str | None = None, timeout: float = 30.0) -> RemoteMemos:
        """A memos service at ``url`` (``memos serve``) with this class's methods,
        records and typed errors; the key picks the tenant."""
        from memos.service.remote import RemoteMemos

        return RemoteMemos(url, api_key=api_key, timeout=timeout)

    # -- the shared services, read from the core ------------------------------

    @property
    def config(self) -> MemosConfig:
        """The settings every part reads (one config, held by the core)."""
        return self.core.config

    @property
    def clock(self) -> Clock:
        return self.core.clock

    @property
    def db(self) -> Database:
        return self.core.db

    @property
    def embedder(self) -> Embedder:
        return self.core.embedder

    @property
    def indexes(self) -> IndexManager:
        return self.core.indexes

    # -- lifecycle -----------------------------------------------------------

    def close(self) -> None:
        """Stop the background scheduler, write pending recalls, save changed
        indexes and release the database."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.stop_scheduler()
        self.core.close()

    def __enter__(self) -> Memos:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- cubes ---------------------------------------------------------------

    def create_cube(self, name: str, owner_id: str | None = None) -> str:
        """Create cube ``name`` (no error when it exists) and return its name."""
        ingest.check_cube_name(name)
        if owner_id is not None:
            check_string(owner_id, "owner_id", ingest.FIELD_LIMITS["user_id"])
        self.db.write(lambda s: store.ensure_cube(s, name, self.clock.now(), owner_id))
        return name

    def cubes(self) -> list[str]:
        """Names of all cubes."""
        with self.db.read() as session:
            return store.cube_names(session)

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
        """Remove an item for good, with every copy of its text: versions, embeddings,
        index vectors, and the snapshots and adapters built from it. Only the audit
        event remains (the id, no text)."""
        self.writer.purge(item_id, reason)

    # -- reading -------------------------------------------------------------

    def get(self, item_id: str) -> MemoryRecord:
        """The item with this id (soft-deleted ones included, with state ``deleted``)."""
        self.core.recalls.flush()
        with self.db.read() as session:
            return store.record_of(session, store.item_by_id(session, item_id))

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
        text = normalize_text(query, self.config.max_text_chars)
        flt = SearchFilter.from_value(filter)
        return self.retriever.search(self.core.cube(cube), text, k, flt, mode, self.clock.now())

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

        The memories in the block count as recalled (see :mod:`memos.lifecycle.recall`).
        """
        if (
            isinstance(budget_tokens, bool)
            or not isinstance(budget_tokens, int)
            or budget_tokens < 1
        ):
            raise InvalidInputError(f"budget_tokens={budget_tokens!r}; allowed: an integer >= 1")
        hits = self.search(query, cube=cube, k=k, filter=filter)
        block = assemble_context(hits, budget_tokens, self.count_tokens)
        self.core.recalls.record((item.id for item in block.items), self.clock.now())
        return block

    def mark_used(self, item_ids: Iterable[str]) -> None:
        """Count memories as recalled (the agent used them): their stability grows.

        Written in the background within ``config.recall_flush_s`` seconds;
        unknown ids raise ``UnknownItemError`` before anything is counted.
        """
        ids = [item_ids] if isinstance(item_ids, str) else list(item_ids)
        for item_id in ids:
            if not isinstance(item_id, str) or string_problem(item_id):
                raise UnknownItemError(f"item id must be a valid string, got {item_id!r}")
        with self.db.read() as session:
            known = set(
                session.scalars(
                    select(Item.id).where(Item.id.in_(ids), Item.state != State.DELETED)
                )
            )
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise UnknownItemError(f"no memory item with id {unknown[0]!r}")
        self.core.recalls.record(ids, self.clock.now())

    def list(
        self,
        *,
        cube: str = DEFAULT_CUBE,
        filter: SearchFilter | Mapping[str, Any] | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[MemoryRecord]:
        """Items of a cube, newest first."""
        ingest.check_count(limit, "limit", 1)
        ingest.check_count(offset, "offset", 0)
        cube_row = self.core.cube(cube)
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
        ingest.check_count(batch, "batch", 1)
        cube_row = self.core.cube(cube)
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
        self.core.recalls.flush()
        cube_row = self.core.cube(cube)
        with self.db.read() as session:
            counts = store.cube_counts(session, cube_row.pk, self.embedder.fingerprint)
        entries, index_revision = self.indexes.figures(cube_row)
        return CubeStats(
            cube=cube,
            items=sum(counts.by_state.values()),
            by_state=counts.by_state,
            versions=counts.versions,
            tags=counts.tags,
            embedded=counts.embedded,
            index_entries=entries,
            index_revision=index_revision,
            revision=cube_row.revision,
            oldest=as_utc(counts.oldest),
            newest=as_utc(counts.newest),
        )

    # -- lifecycle ------------------------------------------------------------

    def retention(self, item_id: str, at: datetime | None = None) -> float:
        """The item's retention R at ``at`` (default now) under ``config.retention``."""
        when = ingest.parse_time(at, "at") or self.clock.now()
        return self.config.retention.retention(self.get(item_id), when)

    def decay(
        self, *, cube: str | None = None, now: datetime | None = None, dry_run: bool = False
    ) -> builtins.list[StateChange]:
        """Move items down the states their retention calls for (see :mod:`memos.lifecycle.decay`).

        ``now`` defaults to the clock; with ``dry_run`` nothing is written.
        Returns the moves (planned ones on a dry run).
        """
        self.core.recalls.flush()
        at = ingest.parse_time(now, "now") or self.clock.now()
        cube_pk = self.core.cube(cube).pk if cube is not None else None
        changes = plan_decay(self.db, self.config.retention, at, cube_pk)
        if not dry_run and changes:
            apply_decay(self.db, changes, at, "decay")
        return changes

    # -- maintenance ----------------------------------------------------------

    def rebuild_index(self, cube: str = DEFAULT_CUBE, progress: Progress | None = None) -> int:
        """Rebuild a cube's dense index from the database; returns its size."""
        cube_row = self.core.cube(cube)
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
        """Write items (every state, with versions) as JSON lines; returns the count.

        A path is written atomically (a failed export leaves no partial file);
        a path inside the home or naming a database file raises ``PathError``.
        """
        from memos.store.transfer import export_items

        return export_items(self.db, out, cube, self.config.home)

    def import_jsonl(
        self, source: str | Path | IO[str], *, cube: str | None = None
    ) -> ImportReport:
        """Read an export back (ids, versions and figures kept); existing ids are skipped."""
        from memos.store.transfer import import_items

        return import_items(self.writer, source, cube)
