"""The Python SDK: ``Memos``, one object an agent loop keeps for its memory.

Read this file top to bottom to follow one ``add`` (validate → skip what is
stored → embed what is new → one write transaction → index) and one
``search`` (hand to :class:`memos.retrieval.Retriever`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from memos import ingest, schema, store
from memos.clock import Clock, SystemClock
from memos.config import MemosConfig
from memos.context import approx_tokens, assemble_context
from memos.db import Database
from memos.embedder import Embedder, SentenceTransformerEmbedder, embed
from memos.errors import DuplicateError, InvalidInputError
from memos.filters import SearchFilter
from memos.indexes import IndexManager, Progress
from memos.models import Cube, Item, ItemTag, ItemVersion
from memos.records import (
    ContextBlock,
    CubeStats,
    ImportReport,
    MemoryRecord,
    MemoryVersion,
    SearchHit,
)
from memos.retrieval import RetentionFn, Retriever, full_retention
from memos.store import NewItem

DEFAULT_CUBE = "default"
_BULK_CHUNK = 256


class Memos:
    """Agent memory backed by a database, an embedder and per-cube indexes.

    Args:
        config: settings; ``None`` reads ``MEMOS_*`` environment variables.
        embedder: an :class:`~memos.embedder.Embedder`; ``None`` loads
            ``config.embedder`` with sentence-transformers (on first use).
        clock: time source (inject a ``ManualClock`` to simulate time).
        retention: retention hook for ranking (used when
            ``config.retention_weight > 0``).
        token_counter: counts prompt tokens for :meth:`context`
            (default: about four characters a token).

    Writes to a cube that does not exist create it; reads of an unknown cube
    raise ``UnknownCubeError``. Instances are safe to share between threads.
    """

    def __init__(
        self,
        config: MemosConfig | None = None,
        *,
        embedder: Embedder | None = None,
        clock: Clock | None = None,
        retention: RetentionFn | None = None,
        token_counter: Callable[[str], int] | None = None,
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
        )
        self.retriever = Retriever(
            self.db, self.embedder, self.indexes, self.config, retention or full_retention
        )
        self.count_tokens = token_counter or approx_tokens
        self._closed = False
        self._lock = threading.Lock()

    # -- lifecycle -----------------------------------------------------------

    def close(self) -> None:
        """Save changed indexes and release the database."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.indexes.save_all()
        self.retriever.close()
        self.db.dispose()

    def __enter__(self) -> Memos:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
        ``pinned``, ``trust``. Text longer than ``config.max_text_chars`` raises
        ``TextTooLongError``; use :meth:`add_document` to chunk it.
        """
        item = ingest.from_mapping({"text": text, **fields}, self.config.max_text_chars, {})
        return self._store([item], cube)[0]

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
        return self._store(items, cube, progress)

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
        return self._store(items, cube, progress)

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
        return self._store(items, cube)

    def _store(
        self, items: Sequence[NewItem], cube: str, progress: Progress | None = None
    ) -> list[MemoryRecord]:
        ingest.check_cube_name(cube)
        stored: dict[str, MemoryRecord] = {}
        chunks = [items[i : i + _BULK_CHUNK] for i in range(0, len(items), _BULK_CHUNK)]
        # Embedding of the next chunk overlaps the database write of this one.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="memos-write") as writer:
            pending: Future[dict[str, MemoryRecord]] | None = None
            done = 0
            for chunk in chunks:
                vectors = self._vectors_for(chunk, cube)
                if pending is not None:
                    stored.update(pending.result())
                    done += _BULK_CHUNK
                    if progress:
                        progress(min(done, len(items)), len(items))
                pending = writer.submit(self._commit, chunk, vectors, cube)
            if pending is not None:
                stored.update(pending.result())
                if progress:
                    progress(len(items), len(items))
        return [stored[item.content_hash] for item in items]

    def _vectors_for(self, items: Sequence[NewItem], cube: str) -> dict[str, np.ndarray]:
        """Vectors for the new content among ``items``: cached ones, then embedded."""
        fingerprint = self.embedder.fingerprint
        hashes = {item.content_hash: item.text for item in items}
        with self.db.read() as session:
            cube_pk = session.scalar(select(Cube.pk).where(Cube.name == cube))
            if cube_pk is not None:
                for known in store.live_by_hash(session, cube_pk, hashes):
                    hashes.pop(known)
            vectors = store.cached_vectors(session, fingerprint, hashes)
        missing = [h for h in hashes if h not in vectors]
        if missing:
            fresh = embed(self.embedder, [hashes[h] for h in missing])
            vectors.update(zip(missing, fresh, strict=True))
        return vectors

    def _commit(
        self, items: Sequence[NewItem], vectors: dict[str, np.ndarray], cube: str
    ) -> dict[str, MemoryRecord]:
        now = self.clock.now()

        def work(session: Session) -> tuple[int, int, dict[str, MemoryRecord], dict[int, str]]:
            cube_row = store.ensure_cube(session, cube, now)
            existing = store.live_by_hash(session, cube_row.pk, (i.content_hash for i in items))
            fresh = list(
                {i.content_hash: i for i in items if i.content_hash not in existing}.values()
            )
            records = {h: store.to_record(row, cube) for h, row in existing.items()}
            if not fresh:
                return cube_row.pk, 0, records, {}
            revision = store.bump_revision(session, cube_row.pk)
            store.save_vectors(
                session,
                self.embedder.fingerprint,
                {
                    i.content_hash: vectors[i.content_hash]
                    for i in fresh
                    if i.content_hash in vectors
                },
            )
            keys = store.insert_items(session, cube_row, fresh, now, revision)
            rows = session.scalars(select(Item).where(Item.pk.in_([pk for pk, _ in keys])))
            records.update({row.content_hash: store.to_record(row, cube) for row in rows})
            return (
                cube_row.pk,
                revision,
                records,
                {pk: i.content_hash for (pk, _), i in zip(keys, fresh, strict=True)},
            )

        try:
            cube_pk, revision, records, new_pks = self.db.write(work)
        except IntegrityError:
            # Another process stored the same text between our check and insert.
            cube_pk, revision, records, new_pks = self.db.write(work)
        if new_pks:
            upserts = {pk: vectors[h] for pk, h in new_pks.items() if h in vectors}
            self.indexes.apply_own_write(cube_pk, revision, upserts, [])
        return records

    def update(self, item_id: str, text: str | None = None, **changes: Any) -> MemoryRecord:
        """Make a new version of an item; the old one stays in :meth:`history`.

        Accepts ``text`` and any of :meth:`add`'s fields except ``source``,
        ``user_id`` and ``agent_id``. Raises ``DuplicateError`` when the new
        text equals another live item of the cube.
        """
        allowed = {
            "metadata",
            "tags",
            "speaker",
            "role",
            "session_id",
            "event_time",
            "pinned",
            "trust",
            "reason",
        }
        unknown = sorted(set(changes) - allowed)
        if unknown:
            raise InvalidInputError(
                f"cannot update field(s) {unknown}; allowed: text, {sorted(allowed)}"
            )
        reason = changes.pop("reason", "update")
        with self.db.read() as session:
            current = store.item_by_id(session, item_id, include_deleted=False)
            cube_name = session.scalar(select(Cube.name).where(Cube.pk == current.cube_pk))
        merged = {
            "metadata": current.meta,
            "tags": current.tags,
            "speaker": current.speaker,
            "role": current.role,
            "session_id": current.session_id,
            "event_time": current.event_time,
            "pinned": current.pinned,
            "trust": current.trust,
            "user_id": current.user_id,
            "agent_id": current.agent_id,
            "source": current.source_kind,
            **changes,
        }
        new = ingest.new_item(
            current.text if text is None else text, max_chars=self.config.max_text_chars, **merged
        )
        vectors = (
            self._vectors_for([new], cube_name) if new.content_hash != current.content_hash else {}
        )
        now = self.clock.now()

        def work(session: Session) -> tuple[int, int, MemoryRecord]:
            item = store.item_by_id(session, item_id, include_deleted=False)
            if new.content_hash != item.content_hash:
                clash = store.live_by_hash(session, item.cube_pk, [new.content_hash])
                if clash:
                    other = next(iter(clash.values())).id
                    raise DuplicateError(f"item {other} already holds this text in the cube")
                store.save_vectors(session, self.embedder.fingerprint, vectors)
            revision = store.bump_revision(session, item.cube_pk)
            store.rewrite_item(session, item, new, now, revision, reason)
            session.flush()
            return item.cube_pk, revision, store.to_record(item, cube_name or "")

        cube_pk, revision, record = self.db.write(work)
        upserts = (
            {self._pk(item_id): vectors[new.content_hash]} if new.content_hash in vectors else {}
        )
        self.indexes.apply_own_write(cube_pk, revision, upserts, [])
        return record

    def delete(self, item_id: str, reason: str = "user") -> MemoryRecord:
        """Soft-delete an item: hidden from search, kept until :meth:`purge`."""
        now = self.clock.now()

        def work(session: Session) -> tuple[int, int, int, MemoryRecord]:
            item = store.item_by_id(session, item_id, include_deleted=False)
            revision = store.bump_revision(session, item.cube_pk)
            store.set_deleted(session, item, now, revision, reason)
            return item.cube_pk, item.pk, revision, self._record(session, item)

        cube_pk, pk, revision, record = self.db.write(work)
        self.indexes.apply_own_write(cube_pk, revision, {}, [pk])
        return record

    def restore(self, item_id: str) -> MemoryRecord:
        """Undo a soft delete (``DuplicateError`` if the text was stored again since)."""
        now = self.clock.now()

        def work(session: Session) -> tuple[int, int, MemoryRecord]:
            item = store.item_by_id(session, item_id)
            if item.state != "deleted":
                return item.cube_pk, -1, self._record(session, item)
            if store.live_by_hash(session, item.cube_pk, [item.content_hash]):
                raise DuplicateError(f"the text of {item_id} was stored again since it was deleted")
            revision = store.bump_revision(session, item.cube_pk)
            store.set_restored(session, item, now, revision)
            return item.cube_pk, revision, self._record(session, item)

        cube_pk, revision, record = self.db.write(work)
        if revision > 0:
            index = self.indexes.loaded(cube_pk)
            if index is not None:
                self.indexes.catch_up(cube_pk, index)
        return record

    def purge(self, item_id: str, reason: str = "user") -> None:
        """Remove an item and its history for good (only the audit event remains)."""
        now = self.clock.now()

        def work(session: Session) -> tuple[int, int]:
            item = store.item_by_id(session, item_id)
            cube_pk, pk = item.cube_pk, item.pk
            store.bump_revision(session, cube_pk)
            store.purge_item(session, item, now, reason)
            return cube_pk, pk

        cube_pk, pk = self.db.write(work)
        self.indexes.forget(cube_pk, [pk])

    # -- reading -------------------------------------------------------------

    def get(self, item_id: str) -> MemoryRecord:
        """The item with this id (soft-deleted ones included, with state ``deleted``)."""
        with self.db.read() as session:
            return self._record(session, store.item_by_id(session, item_id))

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
        """The best memories for ``query`` as a prompt block within ``budget_tokens``."""
        if (
            isinstance(budget_tokens, bool)
            or not isinstance(budget_tokens, int)
            or budget_tokens < 1
        ):
            raise InvalidInputError(f"budget_tokens={budget_tokens!r}; allowed: an integer >= 1")
        hits = self.search(query, cube=cube, k=k, filter=filter)
        return assemble_context(hits, budget_tokens, self.count_tokens)

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
        index = self.indexes.loaded(cube_row.pk)
        return CubeStats(
            cube=cube,
            items=sum(by_state.values()),
            by_state=by_state,
            versions=int(versions or 0),
            tags=int(tags or 0),
            embedded=embedded,
            index_entries=len(index) if index else None,
            index_revision=index.revision if index else None,
            revision=cube_row.revision,
            oldest=_utc(span[0]),
            newest=_utc(span[1]),
        )

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

    # -- helpers -------------------------------------------------------------

    def _record(self, session: Session, item: Item) -> MemoryRecord:
        name = session.scalar(select(Cube.name).where(Cube.pk == item.cube_pk))
        return store.to_record(item, name or "")

    def _pk(self, item_id: str) -> int:
        with self.db.read() as session:
            return int(session.scalar(select(Item.pk).where(Item.id == item_id)) or -1)


def _utc(value: datetime | None) -> datetime | None:
    from memos.clock import as_utc

    return as_utc(value)
