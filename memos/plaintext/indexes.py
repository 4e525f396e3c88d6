"""Keeping each cube's dense and keyword indexes in step with the database.

Both indexes are derived. The dense one is loaded from its file when that
file is whole and built for this cube and embedder, and rebuilt from stored
vectors when the file is missing or bad (vectors missing from the embedding
cache are computed then); the keyword one is built from the texts when the
cube is first searched. Both are caught up from the database by the cube's
revision (items stamped with a newer ``change_seq`` are re-read) and
reconciled when their item set disagrees with the database (a purge).
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from memos import store
from memos.errors import IndexFileError, IndexRebuiltWarning
from memos.plaintext.embedder import Embedder, embed
from memos.plaintext.index_file import IndexIdentity, peek
from memos.plaintext.keyword import KeywordIndex
from memos.records import SEARCHABLE_STATES, State
from memos.store.db import Database
from memos.store.models import Cube, Embedding, Item

if TYPE_CHECKING:  # FAISS loads when the first index opens
    from memos.plaintext.dense_index import DenseIndex

log = logging.getLogger(__name__)
_SAVE_EVERY = 5000
_BATCH = 2000

Progress = Callable[[int, int], None]


class IndexManager:
    """Loads, catches up, rebuilds and saves the dense index of every cube.

    Args:
        db: the system of record.
        embedder: the embedder whose vectors the indexes hold.
        folder: where index files live (one per cube and embedder).
        kind: ``"flat"`` or ``"hnsw"``.
        hnsw_m: HNSW graph degree.
    """

    def __init__(self, db: Database, embedder: Embedder, folder: Path, kind: str, hnsw_m: int):
        self.db = db
        self.embedder = embedder
        self.folder = folder
        self.kind = kind
        self.hnsw_m = hnsw_m
        self._indexes: dict[int, DenseIndex] = {}
        self._keyword: dict[int, KeywordIndex] = {}
        self._hidden: dict[int, set[int]] = {}
        self._lock = threading.RLock()

    def path(self, cube_id: str) -> Path:
        tag = self.embedder.fingerprint.rsplit(":", 1)[-1]
        return self.folder / cube_id / f"dense-{self.kind}-{tag}.safetensors"

    def get(self, cube: Cube, revision: int | None = None) -> DenseIndex:
        """The cube's dense index, caught up with the database (with its keyword index).

        Args:
            revision: the cube's revision if the caller has just read it.
        """
        with self._lock:
            index = self._indexes.get(cube.pk)
            if index is None:
                self._keyword[cube.pk] = self._build_keyword(cube.pk)
                index = self._open(cube)
                self._indexes[cube.pk] = index
        self.catch_up(cube.pk, index, revision)
        return index

    def keyword(self, cube: Cube) -> KeywordIndex:
        """The cube's keyword index as of the last :meth:`get`."""
        if cube.pk not in self._keyword:
            self.get(cube)
        return self._keyword[cube.pk]

    def hidden(self, cube_pk: int) -> set[int]:
        """Indexed items of the cube in a state plain searches skip (archived, forgotten)."""
        return self._hidden.setdefault(cube_pk, set())

    def _build_keyword(self, cube_pk: int) -> KeywordIndex:
        index = KeywordIndex()
        hidden = self.hidden(cube_pk)
        hidden.clear()
        with self.db.read() as session:
            index.revision = _revision(session, cube_pk)
            rows = session.execute(
                select(Item.pk, Item.text, Item.state).where(
                    Item.cube_pk == cube_pk, Item.state != State.DELETED
                )
            ).all()
        index.upsert((int(pk), text) for pk, text, _ in rows)
        hidden.update(int(pk) for pk, _, state in rows if state not in SEARCHABLE_STATES)
        return index

    def figures(self, cube: Cube) -> tuple[int, int]:
        """Live entries and revision of the cube's dense index.

        Read from the file's header (no FAISS) when the index is not loaded
        and its file is whole and current; otherwise the index is loaded.
        """
        index = self.loaded(cube.pk)
        if index is None:
            peeked = peek(self.path(cube.id), self._identity(cube))
            if peeked is not None and peeked[1] == cube.revision:
                return peeked
            index = self.get(cube)
        return len(index), index.revision

    def loaded(self, cube_pk: int) -> DenseIndex | None:
        """The cube's index if this process has it in memory."""
        return self._indexes.get(cube_pk)

    def _open(self, cube: Cube) -> DenseIndex:
        path = self.path(cube.id)
        try:
            from memos.plaintext.dense_index import DenseIndex

            index = DenseIndex.load(path, self._identity(cube), self.hnsw_m)
        except IndexFileError as exc:
            # A cube folder without the file: it was saved here and since lost
            # (a cube never indexed here has no folder, and nothing to warn about).
            if path.exists() or path.parent.is_dir():
                warnings.warn(
                    f"dense index of cube {cube.name!r} is unusable ({exc}); rebuilding",
                    IndexRebuiltWarning,
                    stacklevel=4,
                )
            return self.rebuild(cube)
        if index.revision > cube.revision:
            warnings.warn(
                f"dense index of cube {cube.name!r} is ahead of the database "
                f"(revision {index.revision} > {cube.revision}); rebuilding",
                IndexRebuiltWarning,
                stacklevel=4,
            )
            return self.rebuild(cube)
        self.catch_up(cube.pk, index)
        self.reconcile(cube.pk, index)
        return index

    def _identity(self, cube: Cube) -> IndexIdentity:
        return IndexIdentity(cube.id, self.embedder.fingerprint, self.embedder.dim, self.kind)

    def rebuild(self, cube: Cube, progress: Progress | None = None) -> DenseIndex:
        """Build the cube's index from the database and save it."""
        from memos.plaintext.dense_index import DenseIndex

        index = DenseIndex(self._identity(cube), self.hnsw_m)
        with self.db.read() as session:
            revision = _revision(session, cube.pk)
            pks = list(
                session.scalars(
                    select(Item.pk).where(Item.cube_pk == cube.pk, Item.state != State.DELETED)
                )
            )
        for start in range(0, len(pks), _BATCH):
            chunk = pks[start : start + _BATCH]
            self._load_vectors(index, chunk)
            if progress:
                progress(min(start + _BATCH, len(pks)), len(pks))
        index.revision = revision
        index.save(self.path(cube.id))
        with self._lock:
            self._indexes[cube.pk] = index
            self._keyword[cube.pk] = self._build_keyword(cube.pk)
        return index

    def catch_up(self, cube_pk: int, index: DenseIndex, revision: int | None = None) -> bool:
        """Apply every change the database has past the indexes' revision."""
        words = self._keyword.get(cube_pk)
        since = min(index.revision, words.revision) if words else index.revision
        if revision == since:
            return False
        with self.db.read() as session:
            revision = _revision(session, cube_pk)
            if revision == since:
                return False
            rows = session.execute(
                select(Item.pk, Item.state, Item.text).where(
                    Item.cube_pk == cube_pk, Item.change_seq > since
                )
            ).all()
        gone = [pk for pk, state, _ in rows if state == State.DELETED]
        live = [(pk, text) for pk, state, text in rows if state != State.DELETED]
        hidden = self.hidden(cube_pk)
        for pk, state, _ in rows:
            if state in SEARCHABLE_STATES or state == State.DELETED:
                hidden.discard(pk)
            else:
                hidden.add(pk)
        with index.lock:
            index.remove(gone)
            self._load_vectors(index, [pk for pk, _ in live])
            index.revision = max(index.revision, revision)
        if words is not None:
            with words.lock:
                words.remove(gone)
                words.upsert(live)
                words.revision = max(words.revision, revision)
        if index.unsaved >= _SAVE_EVERY:
            self.save(cube_pk)
        return True

    def reconcile(self, cube_pk: int, index: DenseIndex) -> None:
        """Make the index hold exactly the cube's live items (purges leave no trace)."""
        with self.db.read() as session:
            live = set(
                session.scalars(
                    select(Item.pk).where(Item.cube_pk == cube_pk, Item.state != State.DELETED)
                )
            )
        held = index.pks()
        if live == held:
            return
        log.info(
            "reconciling dense index of cube %s: %d extra, %d missing",
            cube_pk,
            len(held - live),
            len(live - held),
        )
        with index.lock:
            index.remove(held - live)
            self._load_vectors(index, sorted(live - held))

    def apply_own_write(
        self,
        cube_pk: int,
        revision: int,
        upserts: dict[int, tuple[str, np.ndarray]],
        removals: list[int],
    ) -> None:
        """Reflect this process's own committed write in its loaded indexes at once.

        Args:
            revision: the cube revision the write committed (-1: do not advance).
            upserts: item pk → (text, vector) of items added or changed.
            removals: pks of items deleted.
        """
        index, words = self._indexes.get(cube_pk), self._keyword.get(cube_pk)
        if index is None or words is None:
            return
        with index.lock:
            index.remove(removals)
            if upserts:
                index.upsert(list(upserts), np.stack([v for _, v in upserts.values()]))
            if index.revision == revision - 1:
                index.revision = revision
        self.hidden(cube_pk).difference_update([*removals, *upserts])
        with words.lock:
            words.remove(removals)
            words.upsert((pk, text) for pk, (text, _) in upserts.items())
            if words.revision == revision - 1:
                words.revision = revision

    def erase(self, cube: Cube, pks: list[int]) -> None:
        """Remove purged items for good: from the loaded indexes and from the cube's
        dense index file, rewritten compacted. Index files of the cube made for
        another embedder or kind are deleted (they are rebuilt when next used)."""
        self.forget(cube.pk, pks)
        path = self.path(cube.id)
        for other in path.parent.glob("dense-*.safetensors"):
            if other != path:
                other.unlink(missing_ok=True)
        if cube.pk not in self._indexes and not path.exists():
            return
        index = self.get(cube)
        index.erase(pks)
        index.save(path)

    def forget(self, cube_pk: int, pks: list[int]) -> None:
        """Drop items from the loaded indexes (found missing from the database)."""
        for index in (self._indexes.get(cube_pk), self._keyword.get(cube_pk)):
            if index is not None:
                index.remove(pks)

    def save(self, cube_pk: int) -> None:
        """Write a loaded index to its file, without items purged meanwhile."""
        index = self._indexes.get(cube_pk)
        if index is not None:
            self._drop_purged(cube_pk, index)
            index.save(self.path(index.identity.cube_id))

    def save_all(self) -> None:
        """Persist every loaded index that has changes not yet on disk."""
        for cube_pk, index in list(self._indexes.items()):
            if index.unsaved:
                self.save(cube_pk)

    def _drop_purged(self, cube_pk: int, index: DenseIndex) -> None:
        """Erase vectors of items no longer in the database (purged, perhaps by
        another process) so saving never writes a purged item back."""
        with self.db.read() as session:
            existing = set(session.scalars(select(Item.pk).where(Item.cube_pk == cube_pk)))
        gone = index.label_pks() - existing
        if gone:
            index.erase(gone)

    def _load_vectors(self, index: DenseIndex, pks: list[int]) -> None:
        """Upsert vectors of items ``pks`` from the cache, embedding what is missing."""
        model = self.embedder.fingerprint
        for start in range(0, len(pks), 500):
            chunk = pks[start : start + 500]
            with self.db.read() as session:
                rows = session.execute(
                    select(Item.pk, Item.content_hash, Item.text, Embedding.vector)
                    .outerjoin(
                        Embedding,
                        (Embedding.content_hash == Item.content_hash) & (Embedding.model == model),
                    )
                    .where(Item.pk.in_(chunk))
                ).all()
            missing = {h: t for _, h, t, v in rows if v is None}
            fresh = _embed_missing(self.db, self.embedder, missing)
            vectors = {
                pk: np.frombuffer(v, dtype=np.float32) if v is not None else fresh[h]
                for pk, h, _, v in rows
            }
            if vectors:
                index.upsert(list(vectors), np.stack(list(vectors.values())))


def _embed_missing(
    db: Database, embedder: Embedder, texts: dict[str, str]
) -> dict[str, np.ndarray]:
    if not texts:
        return {}
    hashes = list(texts)
    vectors = embed(embedder, [texts[h] for h in hashes])
    fresh = dict(zip(hashes, vectors, strict=True))
    db.write(lambda session: store.save_vectors(session, embedder.fingerprint, fresh))
    return fresh


def _revision(session: Session, cube_pk: int) -> int:
    return int(session.scalar(select(Cube.revision).where(Cube.pk == cube_pk)) or 0)
