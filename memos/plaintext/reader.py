"""Every read of the plaintext tier: get, history, list, iterate, search, context, stats.

The counterpart of :class:`memos.plaintext.writer.Writer`. Cube names are the
stored ones (the façade and the tenant view map theirs); arguments are
checked here, before anything is read, so each door gets the same typed
errors. A search hands over to :class:`memos.plaintext.retrieval.Retriever`;
a context block counts its memories as recalled.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from memos import store
from memos.clock import as_utc
from memos.errors import UnknownItemError
from memos.filters import FilterArg, SearchFilter
from memos.plaintext.context import assemble_context, check_budget
from memos.plaintext.retrieval import Retriever
from memos.records import ContextBlock, CubeStats, MemoryRecord, MemoryVersion, SearchHit
from memos.validation import (
    check_count,
    check_cube_name,
    check_id,
    check_ids,
    check_search,
    normalize_text,
)

if TYPE_CHECKING:
    from memos.core import Core


@dataclass
class Reader:
    """Reads one store's items for the façade and the tenant views.

    Args:
        core: the store's shared services.
        count_tokens: counts prompt tokens for :meth:`context`.
    """

    core: Core
    count_tokens: Callable[[str], int]

    def __post_init__(self) -> None:
        self.retriever = Retriever(self.core)

    def get(self, item_id: str) -> MemoryRecord:
        """The item with this id (soft-deleted ones included)."""
        check_id(item_id, "memory item", UnknownItemError)
        self.core.recalls.flush()
        with self.core.db.read() as session:
            return store.record_of(session, store.item_by_id(session, item_id))

    def history(self, item_id: str) -> list[MemoryVersion]:
        """Every version of an item, oldest first."""
        check_id(item_id, "memory item", UnknownItemError)
        with self.core.db.read() as session:
            item = store.item_by_id(session, item_id)
            return [store.to_version(v, item.id) for v in store.versions_of(session, item)]

    def search(
        self, query: str, cube: str, k: int, filter: FilterArg, mode: str
    ) -> list[SearchHit]:
        """The ``k`` memories of ``cube`` that best match ``query``.

        Every argument is checked (in the order the remote SDK checks them)
        before the cube is looked up.
        """
        check_cube_name(cube)
        text = normalize_text(query, self.core.config.max_text_chars)
        flt = SearchFilter.from_value(filter)
        check_search(k, mode)
        cube_ref = self.core.cube(cube)
        return self.retriever.search(cube_ref, text, k, flt, mode, self.core.clock.now())

    def context(
        self, query: str, budget_tokens: int, cube: str, k: int, filter: FilterArg
    ) -> ContextBlock:
        """The best memories for ``query`` as a prompt block; they count as recalled."""
        check_cube_name(cube)
        check_budget(budget_tokens)
        hits = self.search(query, cube, k, filter, "hybrid")
        block = assemble_context(hits, budget_tokens, self.count_tokens)
        self.core.recalls.record((item.id for item in block.items), self.core.clock.now())
        return block

    def mark_used(self, item_ids: Iterable[str]) -> None:
        """Count memories as recalled; unknown ids raise before anything is counted."""
        ids = check_ids(item_ids, "memory item", UnknownItemError)
        with self.core.db.read() as session:
            known = store.live_ids(session, ids)
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise UnknownItemError(f"no memory item with id {unknown[0]!r}")
        self.core.recalls.record(ids, self.core.clock.now())

    def list(self, cube: str, filter: FilterArg, limit: int, offset: int) -> list[MemoryRecord]:
        """Items of a cube, newest first, one page."""
        check_cube_name(cube)
        check_count(limit, "limit", 1)
        check_count(offset, "offset", 0)
        flt = SearchFilter.from_value(filter)
        cube_ref = self.core.cube(cube)
        with self.core.db.read() as session:
            return store.list_records(session, cube_ref.pk, cube_ref.name, flt, limit, offset)

    def iterate(self, cube: str, filter: FilterArg, batch: int) -> Iterator[MemoryRecord]:
        """Every matching item of a cube, oldest first, read in batches."""
        check_count(batch, "batch", 1)
        cube_ref = self.core.cube(cube)
        flt = SearchFilter.from_value(filter)
        last = 0
        while True:
            with self.core.db.read() as session:
                rows = store.records_after(session, cube_ref.pk, cube_ref.name, flt, last, batch)
            if not rows:
                return
            last = rows[-1][0]
            yield from (record for _, record in rows)

    def stats(self, cube: str) -> CubeStats:
        """Counts by state, versions, tags, embeddings and index figures of a cube."""
        self.core.recalls.flush()
        cube_ref = self.core.cube(cube)
        with self.core.db.read() as session:
            counts = store.cube_counts(session, cube_ref.pk, self.core.embedder.fingerprint)
        entries, index_revision = self.core.indexes.figures(cube_ref)
        return CubeStats(
            cube=cube,
            items=sum(counts.by_state.values()),
            by_state=counts.by_state,
            versions=counts.versions,
            tags=counts.tags,
            embedded=counts.embedded,
            index_entries=entries,
            index_revision=index_revision,
            revision=cube_ref.revision,
            oldest=as_utc(counts.oldest),
            newest=as_utc(counts.newest),
        )
