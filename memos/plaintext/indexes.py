"""Keeping each cube's dense and keyword indexes in step with the database, within
a memory budget.

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
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
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


@dataclass
class CubeIndexes:
    """What one process holds in memory for one cube's search: the dense index,
    the keyword index, the cube's layout (sessions, speakers, times) and the
    items plain searches skip. One record, so the four never drift apart."""

    dense: DenseIndex
    keyword: KeywordIndex
    layout: CubeLayout
    hidden: set[int] = field(default_factory=set)

    def nbytes(self) -> int:
        """About how much memory the record takes (see :data:`BYTES_PER_ITEM`)."""
        items = max(len(self.dense), len(self.keyword))
        dim = self.dense.identity.dim
        vectors = 4 * dim * (2 if self.dense.identity.kind == "hnsw" else 1)
        return items * (BYTES_PER_ITEM + vectors) + 16 * dim * dim


#: Memory per indexed item besides its vector: the keyword index's postings and
#: per-document term counts, the label maps and the layout. Measured with
#: tracemalloc at 5,000 and 20,000 items of 20 words: 3.3 and 1.9 KB; the
#: larger figure is used, so the budget errs on the safe side.
BYTES_PER_ITEM = 3300


class IndexManager:
    """Loads, catches up, rebuilds, saves and evicts the indexes of every cube.

    Args:
        db: the system of record.
        embedder: the embedder whose vectors the indexes hold.
        folder: where index files live (one per cube and embedder).
        kind: ``"flat"`` or ``"hnsw"``.
        hnsw_m: HNSW graph degree.
        key_fields: what joins the text in keyword keys (see :mod:`memos.search_keys`).
        stem: whether the keyword index matches word stems.
        budget_bytes: most memory the loaded cubes take (``None``: no bound). Past
            it, the least recently used cubes are evicted (their dense index saved
            first) and loaded again, from the file and the database, when next used.
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
        budget_bytes: int | None = None,
    ):
        self.db = db
        self.embedder = embedder
        self.folder = folder
        self.kind = kind
        self.hnsw_m = hnsw_m
        self.key_fields = key_fields
        self.stem = stem
        self.budget_bytes = budget_bytes
        self._cubes: OrderedDict[int, CubeIndexes] = OrderedDict()
        self._lock = threading.RLock()
        self.evictions = 0

    def path(self, cube_id: str) -> Path:
        tag = self.embedder.fingerprint.rsplit(":", 1)[-1]
        return self.folder / cube_id / f"dense-{self.kind}-{tag}.safetensors"

    def open(self, cube: CubeRef, revision: int | None = None) -> CubeIndexes:
        """The cube's indexes, loaded when needed and caught up with the database.

        Args:
            revision: the cube's revision if the caller has just read it.
        """
        with self._lock:
            entry = self._cubes.get(cube.pk)
            if entry is None:
                entry = self._load(cube)
                self._cubes[cube.pk] = entry
                self._evict(keep=cube.pk)
            self._cubes.move_to_end(cube.pk)
        self._catch_up(cube.pk, entry, revision)
        return entry

    def get(self, cube: CubeRef, revision: int | None = None) -> DenseIndex:
        """The cube's dense index, caught up with the database (see :meth:`open`)."""
        return self.open(cube, revision).dense

    def keyword(self, cube: CubeRef) -> KeywordIndex:
        """The cube's keyword index."""
        return self.open(cube).keyword

    def layout(self, cube: CubeRef) -> CubeLayout:
        """The cube's sessions, speakers and event times."""
        return self.open(cube).layout

    def hidden(self, cube_pk: int) -> set[int]:
        """Indexed items of a loaded cube in a state plain searches skip
        (archived, forgotten); empty for a cube not loaded."""
        entry = self._entry(cube_pk)
        return entry.hidden if entry is not None else set()

    def loaded(self, cube_pk: int) -> DenseIndex | None:
        """The cube's dense index if this process has it in memory."""
        entry = self._entry(cube_pk)
        return entry.dense if entry is not None else None

    def _entry(self, cube_pk: int) -> CubeIndexes | None:
        """The loaded record of a cube (``None`` when not loaded), read under the lock."""
        with self._lock:
            return self._cubes.get(cube_pk)

    def memory_bytes(self) -> int:
        """About how much memory the loaded cubes take."""
        with self._lock:
            return sum(entry.nbytes() for entry in self._cubes.values())

    def _evict(self, keep: int) -> None:
        """Drop least recently used cubes until the loaded ones fit the budget."""
        if self.budget_bytes is None:
            return
        total = sum(entry.nbytes() for entry in self._cubes.values())
        for cube_pk in list(self._cubes):
            if total <= self.budget_bytes:
                return
            if cube_pk == keep:
                continue
            entry = self._cubes.pop(cube_pk)
            total -= entry.nbytes()
            if entry.dense.unsaved:
                self._save(cube_pk, entry.dense)
            self.evictions += 1

    def _load(self, cube: CubeRef) -> CubeIndexes:
        keyword, layout, hidden = self._build_keyword(cube.pk)
        entry = CubeIndexes(self._open_dense(cube), keyword, layout, hidden)
        self._catch_up(cube.pk, entry)
        self._reconcile(cube.pk, entry.dense)
        return entry

    def _build_keyword(self, cube_pk: int) -> tuple[KeywordIndex, CubeLayout, set[int]]:
        index, layout = KeywordIndex(stem=self.stem), CubeLayout()
        with self.db.read() as session:
            index.revision = store.cube_revision(session, cube_pk)
            rows = _keyed_rows(
                session,
                self.key_fields,
                index_rows.index_rows(session, cube_pk=cube_pk, live_only=True),
            )
        index.upsert((row.pk, row.key) for row in rows)
        layout.upsert((row.pk, row.placement) for row in rows)
        hidden = {row.pk for row in rows if row.state not in SEARCHABLE_STATES}
        return index, layout, hidden

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

    def _open_dense(self, cube: CubeRef) -> DenseIndex:
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
                    stacklevel=5,
                )
            return self._build_dense(cube)
        if index.revision > cube.revision:
            warnings.warn(
                f"dense index of cube {cube.name!r} is ahead of the database "
                f"(revision {index.revision} > {cube.revision}); rebuilding",
                IndexRebuiltWarning,
                stacklevel=5,
            )
            return self._build_dense(cube)
        return index

    def _identity(self, cube: CubeRef) -> IndexIdentity:
        return IndexIdentity(cube.id, self.embedder.fingerprint, self.embedder.dim, self.kind)

    def _build_dense(self, cube: CubeRef, progress: Progress | None = None) -> DenseIndex:
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
        return index

    def rebuild(self, cube: CubeRef, progress: Progress | None = None) -> DenseIndex:
        """Build the cube's indexes from the database (the dense one saved)."""
        dense = self._build_dense(cube, progress)
        keyword, layout, hidden = self._build_keyword(cube.pk)
        with self._lock:
            self._cubes[cube.pk] = CubeIndexes(dense, keyword, layout, hidden)
            self._evict(keep=cube.pk)
        return dense

    def catch_up(self, cube_pk: int, revision: int | None = None) -> bool:
        """Apply every change the database has past a loaded cube's revision."""
        entry = self._entry(cube_pk)
        return entry is not None and self._catch_up(cube_pk, entry, revision)

    def _catch_up(self, cube_pk: int, entry: CubeIndexes, revision: int | None = None) -> bool:
        index, words = entry.dense, entry.keyword
        since = min(index.revision, words.revision)
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
        for row in rows:
            if row.state in SEARCHABLE_STATES or row.state == State.DELETED:
                entry.hidden.discard(row.pk)
            else:
                entry.hidden.add(row.pk)
        with index.lock:
            index.remove(gone)
            self._load_vectors(index, [row.pk for row in live])
            index.revision = max(index.revision, revision)
        with words.lock:
            words.remove(gone)
            words.upsert((row.pk, row.key) for row in live)
            words.revision = max(words.revision, revision)
        entry.layout.remove(gone)
        entry.layout.upsert((row.pk, row.placement) for row in live)
        if index.unsaved >= _SAVE_EVERY:
            self._save(cube_pk, index)
        return True

    def _reconcile(self, cube_pk: int, index: DenseIndex) -> None:
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
        entry = self._entry(cube_pk)
        if entry is None:
            return
        index, words = entry.dense, entry.keyword
        with index.lock:
            index.remove(removals)
            if upserts:
                index.upsert(list(upserts), np.stack(list(upserts.values())))
            if index.revision == revision - 1:
                index.revision = revision
        entry.hidden.difference_update([*removals, *upserts])
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
        entry.layout.remove(removals)
        entry.layout.upsert((row.pk, row.placement) for row in rows)

    def erase(self, cube: CubeRef, pks: list[int]) -> None:
        """Remove purged items for good: from the loaded indexes and from the cube's
        dense index file, rewritten compacted. Index files of the cube made for
        another embedder or kind are deleted (they are rebuilt when next used)."""
        self.forget(cube.pk, pks)
        path = self.path(cube.id)
        for other in path.parent.glob("dense-*.safetensors"):
            if other != path:
                other.unlink(missing_ok=True)
        if self._entry(cube.pk) is None and not path.exists():
            return
        index = self.get(cube)
        index.erase(pks)
        index.save(path)

    def forget(self, cube_pk: int, pks: list[int]) -> None:
        """Drop items from the loaded indexes (found missing from the database)."""
        entry = self._entry(cube_pk)
        if entry is not None:
            entry.dense.remove(pks)
            entry.keyword.remove(pks)
            entry.layout.remove(pks)

    def save(self, cube_pk: int) -> None:
        """Write a loaded index to its file, without items purged meanwhile."""
        entry = self._entry(cube_pk)
        if entry is not None:
            self._save(cube_pk, entry.dense)

    def _save(self, cube_pk: int, index: DenseIndex) -> None:
        self._drop_purged(cube_pk, index)
        index.save(self.path(index.identity.cube_id))

    def save_all(self) -> None:
        """Persist every loaded index that has changes not yet on disk."""
        with self._lock:
            loaded = list(self._cubes.items())
        for cube_pk, entry in loaded:
            if entry.dense.unsaved:
                self._save(cube_pk, entry.dense)

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
