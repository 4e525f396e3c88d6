"""Every change to memory: add, update, delete, restore, purge.

Each change validates first, embeds outside any transaction, then runs one
short write transaction (retried on contention) that bumps the cube's
revision, and finally reflects itself in this process's loaded index. Other
processes pick the change up from the revision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from memos import store
from memos.errors import DuplicateError, UnknownItemError
from memos.fields import Progress
from memos.plaintext import ingest
from memos.plaintext.embedder import embed
from memos.records import RESTORABLE, MemoryRecord, NewItem, State
from memos.store import Session
from memos.store.cubes import CubeRef
from memos.store.db import WriteConflict
from memos.validation import check_cube_name, check_id, check_reason

if TYPE_CHECKING:
    from memos.core import Core

# Items embedded and written per chunk. The embedder sorts each call's texts by
# length to pad little; chunks of 256 padded more and cost add_messages a
# quarter of the embedder's speed (0.74x raw encode on a 689-turn conversation,
# 2 cores), chunks of 1024 run at 0.97-0.99x. Larger inputs still overlap
# embedding the next chunk with writing this one.
BULK_CHUNK = 1024


@dataclass
class Writer:
    """Applies changes to the database and the loaded indexes."""

    core: Core

    def store(
        self, items: Sequence[NewItem], cube: str, progress: Progress | None = None
    ) -> list[MemoryRecord]:
        """Store ``items`` (skipping text the cube holds) and return them in order.

        Work goes in chunks; embedding the next chunk overlaps writing this one.
        """
        check_cube_name(cube)
        stored: dict[str, MemoryRecord] = {}
        chunks = [items[i : i + BULK_CHUNK] for i in range(0, len(items), BULK_CHUNK)]
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="memos-write") as pool:
            pending: Future[dict[str, MemoryRecord]] | None = None
            for chunk in chunks:
                vectors = self.vectors_for(chunk, cube)
                if pending is not None:
                    self._collect(pending, stored, progress, len(items))
                pending = pool.submit(self._commit, chunk, vectors, cube)
            if pending is not None:
                self._collect(pending, stored, progress, len(items))
        return [stored[item.content_hash] for item in items]

    @staticmethod
    def _collect(
        pending: Future[dict[str, MemoryRecord]],
        stored: dict[str, MemoryRecord],
        progress: Progress | None,
        total: int,
    ) -> None:
        before = len(stored)
        stored.update(pending.result())
        if progress:
            progress(min(total, len(stored) + (before == len(stored))), total)

    def vectors_for(self, items: Sequence[NewItem], cube: str) -> dict[str, np.ndarray]:
        """Vectors of the content among ``items`` the cube lacks: cached, else embedded."""
        texts = {item.content_hash: item.text for item in items}
        with self.core.db.read() as session:
            cube_pk = store.cube_pk_of(session, cube)
            if cube_pk is not None:
                for known in store.live_by_hash(session, cube_pk, texts):
                    texts.pop(known)
            vectors = store.cached_vectors(session, self.core.embedder.fingerprint, texts)
        missing = [h for h in texts if h not in vectors]
        if missing:
            fresh = embed(self.core.embedder, [texts[h] for h in missing])
            vectors.update(zip(missing, fresh, strict=True))
        return vectors

    def _commit(
        self, items: Sequence[NewItem], vectors: dict[str, np.ndarray], cube: str
    ) -> dict[str, MemoryRecord]:
        now = self.core.clock.now()

        def work(session: Session) -> tuple[int, int, dict[str, MemoryRecord], dict[int, str]]:
            cube_row = store.ensure_cube(session, cube, now)
            existing = store.live_by_hash(session, cube_row.pk, (i.content_hash for i in items))
            revive = [
                row for row in existing.values() if row.state in (State.ARCHIVED, State.FORGOTTEN)
            ]
            if revive:
                # Storing a text the cube had let fade brings it back (a fresh
                # revision first, so this process's index catches up on it).
                revived_at = store.bump_revision(session, cube_row.pk)
                for row in revive:
                    store.set_restored(session, row, now, revived_at)
            records = {h: store.to_record(row, cube) for h, row in existing.items()}
            fresh = list(
                {i.content_hash: i for i in items if i.content_hash not in existing}.values()
            )
            if not fresh:
                return cube_row.pk, 0, records, {}
            revision = store.bump_revision(session, cube_row.pk)
            known = {
                i.content_hash: vectors[i.content_hash] for i in fresh if i.content_hash in vectors
            }
            store.save_vectors(session, self.core.embedder.fingerprint, known)
            keys = store.insert_items(
                session, cube_row, fresh, now, revision, self.core.config.retention
            )
            fresh_records = store.records_by_ids(session, [pk for pk, _ in keys], cube)
            records.update({r.content_hash: r for r in fresh_records})
            new_pks = {pk: item.content_hash for (pk, _), item in zip(keys, fresh, strict=True)}
            return cube_row.pk, revision, records, new_pks

        try:
            cube_pk, revision, records, new_pks = self.core.db.write(work)
        except WriteConflict:
            # Another process stored the same text between our check and insert.
            cube_pk, revision, records, new_pks = self.core.db.write(work)
        if new_pks:
            upserts = {pk: vectors[h] for pk, h in new_pks.items() if h in vectors}
            # An item deleted elsewhere after we checked has no vector here:
            # then leave the revision alone and let catch-up embed it.
            complete = len(upserts) == len(new_pks)
            self.core.indexes.apply_own_write(cube_pk, revision if complete else -1, upserts, [])
        return records

    def update(self, item_id: str, text: str | None, changes: Mapping[str, Any]) -> MemoryRecord:
        """Write the next version of an item (see ``Memos.update``)."""
        reason = ingest.check_update(text, changes, self.core.config.max_text_chars)
        fields = {k: v for k, v in changes.items() if k != "reason"}
        check_id(item_id, "memory item", UnknownItemError)
        with self.core.db.read() as session:
            current = store.item_by_id(session, item_id, include_deleted=False)
            cube_name = store.cube_name_of(session, current.cube_pk)
        new = ingest.new_item(
            current.text if text is None else text,
            max_chars=self.core.config.max_text_chars,
            **{**_editable(current), **fields},
        )
        changed = new.content_hash != current.content_hash
        vectors = self.vectors_for([new], cube_name) if changed else {}
        now = self.core.clock.now()

        def work(session: Session) -> tuple[int, int, int, MemoryRecord]:
            item = store.item_by_id(session, item_id, include_deleted=False)
            if new.content_hash != item.content_hash:
                clash = store.live_by_hash(session, item.cube_pk, [new.content_hash])
                if clash:
                    other = next(iter(clash.values())).id
                    raise DuplicateError(f"item {other} already holds this text in the cube")
                store.save_vectors(session, self.core.embedder.fingerprint, vectors)
            revision = store.bump_revision(session, item.cube_pk)
            store.rewrite_item(session, item, new, now, revision, reason)
            session.flush()
            return item.cube_pk, item.pk, revision, store.to_record(item, cube_name)

        cube_pk, pk, revision, record = self.core.db.write(work)
        upserts = {pk: vectors[new.content_hash]} if new.content_hash in vectors else {}
        self.core.indexes.apply_own_write(cube_pk, revision, upserts, [])
        return record

    def delete(self, item_id: str, reason: str) -> MemoryRecord:
        """Soft-delete an item."""
        check_reason(reason)
        now = self.core.clock.now()

        def work(session: Session) -> tuple[int, int, int, MemoryRecord]:
            item = store.item_by_id(session, item_id, include_deleted=False)
            revision = store.bump_revision(session, item.cube_pk)
            store.set_deleted(session, item, now, revision, reason)
            return item.cube_pk, item.pk, revision, store.record_of(session, item)

        cube_pk, pk, revision, record = self.core.db.write(work)
        self.core.indexes.apply_own_write(cube_pk, revision, {}, [pk])
        return record

    def restore(self, item_id: str) -> MemoryRecord:
        """Undo a soft delete, or bring back a forgotten or archived item."""
        now = self.core.clock.now()

        def work(session: Session) -> tuple[int, bool, MemoryRecord]:
            item = store.item_by_id(session, item_id)
            if item.state not in RESTORABLE:
                return item.cube_pk, False, store.record_of(session, item)
            if item.state == State.DELETED and store.live_by_hash(
                session, item.cube_pk, [item.content_hash]
            ):
                raise DuplicateError(f"the text of {item_id} was stored again since it was deleted")
            revision = store.bump_revision(session, item.cube_pk)
            store.set_restored(session, item, now, revision)
            return item.cube_pk, True, store.record_of(session, item)

        cube_pk, changed, record = self.core.db.write(work)
        if changed:
            self.core.indexes.catch_up(cube_pk)
        return record

    def purge(self, item_id: str, reason: str) -> None:
        """Remove an item and every copy of its text for good (see ``store.purge_item``):
        then delete the files of artifacts built from it, rewrite the cube's dense
        index file without it, and scrub the database's free space."""
        check_reason(reason)
        now = self.core.clock.now()

        def work(session: Session) -> tuple[CubeRef, int, list[str]]:
            item = store.item_by_id(session, item_id)
            store.bump_revision(session, item.cube_pk)
            cube, pk = store.cube_ref(session, store.cube_name_of(session, item.cube_pk)), item.pk
            files = store.purge_item(session, item, now, reason)
            return cube, pk, files

        cube, pk, files = self.core.db.write(work)
        for recorded in files:
            self.core.artifact_files.delete(recorded)
        self.core.indexes.erase(cube, [pk])
        self.core.db.scrub()


def _editable(item: Any) -> dict[str, Any]:
    return {
        "metadata": item.meta,
        "tags": item.tags,
        "speaker": item.speaker,
        "role": item.role,
        "session_id": item.session_id,
        "event_time": item.event_time,
        "pinned": item.pinned,
        "trust": item.trust,
        "user_id": item.user_id,
        "agent_id": item.agent_id,
        "source": item.source_kind,
    }
