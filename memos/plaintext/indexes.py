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

import itertools
import logging
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from memos import store
from memos.errors import IndexFileError, IndexRebuiltWarning
from memos.fields import Progress
from memos.plaintext.embedder import Embedder, embed
from memos.plaintext.index_file import IndexIdentity, peek
from memos.plaintext.keyword import KeywordIndex
from memos.plaintext.neighbourhood import CubeLayout, Placement
from memos.plaintext.search_keys import KeySource, asked_question, keyword_key
from memos.records import SEARCHABLE_STATES, State
from memos.store import index_rows
from memos.store.cubes import CubeRef
from memos.store.db import Database

if TYPE_CHECKING:  # FAISS loads when the first index opens
    from memos.plaintext.dense_index import DenseIndex

log = logging.getLogger(__name__)
_SAVE_EVERY = 5000
_BATCH = 2000


class IndexManager:
    """Loads, catches up, rebuilds and saves the dense index of every cube.

    Args:
        db: the system of record.
        embedder: the embedder whose vectors the indexes hold.
        folder: where index files live (one per cube and embedder).
        kind: ``"flat"`` or ``"hnsw"``.
        hnsw_m: HNSW graph degree.
        key_fields: what joins the text in keyword keys (see :mod:`memos.search_keys`).
        stem: whether the keyword index matches word stems.
    """

    def __init__(
        self,
        db: Database,
        embedder: Embedder,
        folder: Path,
        kind: str,
        hnsw_m: int,
        key_fields: tuple[str, ...] = (),
        stem: bool = False,
    ):
        self.db = db
        self.embedder = embedder
        self.folder = folder
        self.kind = kind
        self.hnsw_m = hnsw_m
        self.key_fields = key_fields
        self.stem = stem
        self._indexes: dict[int, DenseIndex] = {}
        self._keyword: dict[int, KeywordIndex] = {}
        self._layout: dict[int, CubeLayout] = {}
        self._hidden: dict[int, set[int]] = {}
        self._lock = threading.RLock()

    def path(self, cube_id: str) -> Path:
        tag = self.embedder.fingerprint.rsplit(":", 1)[-1]
        return self.folder / cube_id / f"dense-{self.kind}-{tag}.safetensors"

    def get(self, cube: CubeRef, revision: int | None = None) -> DenseIndex:
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

    def keyword(self, cube: CubeRef) -> KeywordIndex:
        """The cube's keyword index as of the last :meth:`get`."""
        if cube.pk not in self._keyword:
            self.get(cube)
        return self._keyword[cube.pk]

    def layout(self, cube: CubeRef) -> CubeLayout:
        """The cube's sessions, speakers and event times as of the last :meth:`get`."""
        if cube.pk not in self._layout:
            self.get(cube)
        return self._layout[cube.pk]

    def hidden(self, cube_pk: int) -> set[int]:
        """Indexed items of the cube in a state plain searches skip (archived, forgotten)."""
        return self._hidden.setdefault(cube_pk, set())

    def _build_keyword(self, cube_pk: int) -> KeywordIndex:
        index = KeywordIndex(stem=self.stem)
        layout = self._layout[cube_pk] = CubeLayout()
        hidden = self.hidden(cube_pk)
        hidden.clear()
        with self.db.read() as session:
            index.revision = store.cube_revision(session, cube_pk)
            rows = _keyed_rows(
                session,
                self.key_fields,
                index_rows.index_rows(session, cube_pk=cube_pk, live_only=True),
            )
        index.upsert((row.pk, row.key) for row in rows)
        layout.upsert((row.pk, row.placement) for row in rows)
        hidden.update(row.pk for row in rows if row.state not in SEARCHABLE_STATES)
        return index

    def figures(self, cube: CubeRef) -> tuple[int, int]:
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

    def _open(self, cube: CubeRef) -> DenseIndex:
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

    def _identity(self, cube: CubeRef) -> IndexIdentity:
        return IndexIdentity(cube.id, self.embedder.fingerprint, self.embedder.dim, self.kind)

    def rebuild(self, cube: CubeRef, progress: Progress | None = None) -> DenseIndex:
        """Build the cube's index from the database and save it."""
        from memos.plaintext.dense_index import DenseIndex

        index = DenseIndex(self._identity(cube), self.hnsw_m)
        with self.db.read() as session:
            revision = store.cube_revision(session, cube.pk)
            pks = index_rows.live_pks(session, cube.pk)
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
            revision = store.cube_revision(session, cube_pk)
            if revision == since:
                return False
            changed = index_rows.index_rows(session, cube_pk=cube_pk, changed_since=since)
            rows = _keyed_rows(session, self.key_fields, changed)
        gone = [row.pk for row in rows if row.state == State.DELETED]
        live = [row for row in rows if row.state != State.DELETED]
        hidden = self.hidden(cube_pk)
        for row in rows:
            if row.state in SEARCHABLE_STATES or row.state == State.DELETED:
                hidden.discard(row.pk)
            else:
                hidden.add(row.pk)
        with index.lock:
            index.remove(gone)
            self._load_vectors(index, [row.pk for row in live])
            index.revision = max(index.revision, revision)
        if words is not None:
            with words.lock:
                words.remove(gone)
                words.upsert((row.pk, row.key) for row in live)
                words.revision = max(words.revision, revision)
        layout = self._layout.get(cube_pk)
        if layout is not None:
            layout.remove(gone)
            layout.upsert((row.pk, row.placement) for row in live)
        if index.unsaved >= _SAVE_EVERY:
            self.save(cube_pk)
        return True

    def reconcile(self, cube_pk: int, index: DenseIndex) -> None:
        """Make the index hold exactly the cube's live items (purges leave no trace)."""
        with self.db.read() as session:
            live = set(index_rows.live_pks(session, cube_pk))
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
        upserts: dict[int, np.ndarray],
        removals: list[int],
    ) -> None:
        """Reflect this process's own committed write in its loaded indexes at once.

        Args:
            revision: the cube revision the write committed (-1: do not advance).
            upserts: item pk → vector of items added or changed (their keyword keys
                are read from the database, which holds every field a key uses).
            removals: pks of items deleted.
        """
        index, words = self._indexes.get(cube_pk), self._keyword.get(cube_pk)
        if index is None or words is None:
            return
        with index.lock:
            index.remove(removals)
            if upserts:
                index.upsert(list(upserts), np.stack(list(upserts.values())))
            if index.revision == revision - 1:
                index.revision = revision
        self.hidden(cube_pk).difference_update([*removals, *upserts])
        rows: list[_KeyedRow] = []
        if upserts:
            with self.db.read() as session:
                fresh = index_rows.index_rows(session, pks=list(upserts))
                rows = _keyed_rows(session, self.key_fields, fresh)
        with words.lock:
            words.remove(removals)
            words.upsert((row.pk, row.key) for row in rows)
            if words.revision == revision - 1:
                words.revision = revision
        layout = self._layout.get(cube_pk)
        if layout is not None:
            layout.remove(removals)
            layout.upsert((row.pk, row.placement) for row in rows)

    def erase(self, cube: CubeRef, pks: list[int]) -> None:
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
        layout = self._layout.get(cube_pk)
        if layout is not None:
            layout.remove(pks)

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
            existing = index_rows.stored_pks(session, cube_pk)
        gone = index.label_pks() - existing
        if gone:
            index.erase(gone)

    def _load_vectors(self, index: DenseIndex, pks: list[int]) -> None:
        """Upsert vectors of items ``pks`` from the cache, embedding what is missing."""
        model = self.embedder.fingerprint
        for start in range(0, len(pks), 500):
            chunk = pks[start : start + 500]
            with self.db.read() as session:
                rows = index_rows.vector_rows(session, chunk, model)
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


@dataclass(frozen=True)
class _KeyedRow:
    pk: int
    state: str
    key: str
    placement: Placement


def _keyed_rows(
    session: store.Session, fields: tuple[str, ...], rows: list[index_rows.IndexRow]
) -> list[_KeyedRow]:
    """``rows`` with their keyword key and placement."""
    asked = _questions_before(session, rows) if "question" in fields else {}
    out = []
    for row in rows:
        source = KeySource(row.text, row.speaker, row.event_time, row.meta, asked.get(row.pk))
        group = row.session_id or row.meta.get("document_id")
        placement = Placement(str(group) if group else None, row.speaker, row.event_time)
        out.append(_KeyedRow(row.pk, row.state, keyword_key(source, fields), placement))
    return out


def _questions_before(
    session: store.Session, rows: Sequence[index_rows.IndexRow]
) -> dict[int, str]:
    """pk -> the text of the turn just before it in its session, where that turn asks
    a question (the question this turn answers, see :mod:`memos.search_keys`)."""
    sessions = {(row.cube_pk, row.session_id) for row in rows if row.session_id is not None}
    by_session: dict[tuple[int, str | None], list[index_rows.Turn]] = {}
    for turn in index_rows.session_turns(session, sessions):
        by_session.setdefault((turn.cube_pk, turn.session_id), []).append(turn)
    out = {}
    for turns_of in by_session.values():
        for before, after in itertools.pairwise(turns_of):
            if question := asked_question(before.text, before.speaker):
                out[after.pk] = question
    return out
