"""The memory API: one contract for every way in.

:class:`MemoryAPI` is what an agent loop can call on any memos object: the
embedded :class:`memos.client.Memos`, a tenant's view of a shared store
(:class:`memos.service.tenancy.TenantMemos`) and the remote client
(:class:`memos.service.remote.RemoteMemos`). Each of the three declares it,
so mypy checks every signature against this one, and a parity test checks that
names, parameters and defaults agree at run time too. The optional fields of
items, updates and trainings are typed dicts from :mod:`memos.fields`, so a
misspelt keyword is a type error, not a surprise.

Every method raises only :class:`memos.errors.MemosError` subclasses, the same
class for the same mistake whichever object it is called on.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Protocol

from typing_extensions import Unpack

from memos.fields import (
    DEFAULT_CUBE,
    DEFAULT_SNAPSHOT_DTYPE,
    ItemFields,
    Progress,
    TrainOptions,
    UpdateFields,
)
from memos.filters import FilterArg
from memos.records import (
    AdapterInfo,
    ContextBlock,
    CubeStats,
    ImportReport,
    JobInfo,
    MemoryRecord,
    MemoryVersion,
    Reply,
    SearchHit,
    SnapshotInfo,
    StateChange,
)

#: Methods only some objects have, by class: what they add to the contract.
#: The parity test allows exactly these beyond :class:`MemoryAPI`.
DOOR_ONLY: dict[str, frozenset[str]] = {
    "Memos": frozenset(
        {
            "chat_stream",
            "check_setup",
            "close",
            "connect",
            "iterate",
            "rebuild_index",
            "retention",
            "start_scheduler",
            "stop_scheduler",
        }
    ),
    "TenantMemos": frozenset(
        {"apply_jobs", "enqueue_run", "enqueue_snapshot", "enqueue_training", "export_lines"}
        | {"chat_stream", "checked_add", "plan", "stored"}
    ),
    "RemoteMemos": frozenset({"close", "export_lines"}),
}


class MemoryAPI(Protocol):
    """The memory of one tenant: cubes of items, search, context, the model tiers.

    Writes to a cube that does not exist create it; reads of an unknown cube
    raise ``UnknownCubeError``. An unknown (or another tenant's) id raises the
    ``NotFoundError`` subclass of its kind.
    """

    # -- cubes -----------------------------------------------------------------

    def cubes(self) -> builtins.list[str]:
        """Names of the cubes."""
        ...

    def create_cube(self, name: str, owner_id: str | None = None) -> str:
        """Create cube ``name`` (no error when it exists) and return its name."""
        ...

    def stats(self, cube: str = DEFAULT_CUBE) -> CubeStats:
        """Counts by state, versions, tags, embeddings and index figures of a cube."""
        ...

    # -- writing -----------------------------------------------------------------

    def add(
        self, text: str, *, cube: str = DEFAULT_CUBE, **fields: Unpack[ItemFields]
    ) -> MemoryRecord:
        """Store one memory and return it (the stored one, if the text is already there)."""
        ...

    def add_many(
        self,
        entries: Iterable[str | Mapping[str, Any]],
        *,
        cube: str = DEFAULT_CUBE,
        progress: Progress | None = None,
        **defaults: Unpack[ItemFields],
    ) -> builtins.list[MemoryRecord]:
        """Store many memories (strings or dicts of :class:`ItemFields` and ``text``);
        all are validated before any is stored. Returned in input order."""
        ...

    def add_messages(
        self,
        messages: Iterable[Mapping[str, Any]],
        *,
        cube: str = DEFAULT_CUBE,
        prefix_speaker: bool = True,
        progress: Progress | None = None,
        **defaults: Unpack[ItemFields],
    ) -> builtins.list[MemoryRecord]:
        """Store each chat turn (``role``, ``content``, optional ``name``,
        ``timestamp``, ``session_id``, ``metadata``) as one item."""
        ...

    def add_document(
        self, text: str, *, cube: str = DEFAULT_CUBE, **defaults: Unpack[ItemFields]
    ) -> builtins.list[MemoryRecord]:
        """Store a long text as overlapping chunks linked by a document id."""
        ...

    def update(
        self, item_id: str, text: str | None = None, **changes: Unpack[UpdateFields]
    ) -> MemoryRecord:
        """Make a new version of an item; the old one stays in :meth:`history`."""
        ...

    def delete(self, item_id: str, reason: str = "user") -> MemoryRecord:
        """Soft-delete an item: hidden from search, kept until :meth:`purge`."""
        ...

    def restore(self, item_id: str) -> MemoryRecord:
        """Bring back a deleted, archived or forgotten item."""
        ...

    def purge(self, item_id: str, reason: str = "user") -> None:
        """Remove an item for good, with every copy of its text."""
        ...

    # -- reading -------------------------------------------------------------------

    def get(self, item_id: str) -> MemoryRecord:
        """The item with this id (soft-deleted ones included)."""
        ...

    def history(self, item_id: str) -> builtins.list[MemoryVersion]:
        """Every version of an item, oldest first."""
        ...

    def search(
        self,
        query: str,
        *,
        cube: str = DEFAULT_CUBE,
        k: int = 10,
        filter: FilterArg = None,
        mode: str = "hybrid",
    ) -> builtins.list[SearchHit]:
        """The ``k`` memories that best match ``query``, with score parts."""
        ...

    def context(
        self,
        query: str,
        *,
        budget_tokens: int = 512,
        cube: str = DEFAULT_CUBE,
        k: int = 20,
        filter: FilterArg = None,
    ) -> ContextBlock:
        """The best memories for ``query`` as a prompt block within the budget
        (they count as recalled)."""
        ...

    def mark_used(self, item_ids: Iterable[str]) -> None:
        """Count memories as recalled (the agent used them)."""
        ...

    def list(
        self,
        *,
        cube: str = DEFAULT_CUBE,
        filter: FilterArg = None,
        limit: int = 50,
        offset: int = 0,
    ) -> builtins.list[MemoryRecord]:
        """Items of a cube, newest first."""
        ...

    # -- lifecycle, export and import ------------------------------------------------

    def decay(
        self, *, cube: str | None = None, now: datetime | None = None, dry_run: bool = False
    ) -> builtins.list[StateChange]:
        """Move items down the states their retention calls for (every cube when
        ``cube`` is ``None``); returns the moves."""
        ...

    def export_jsonl(self, out: str | Path | IO[str], *, cube: str | None = None) -> int:
        """Write items (every state, with versions) as JSON lines; returns the count."""
        ...

    def import_jsonl(
        self, source: str | Path | IO[str], *, cube: str | None = None
    ) -> ImportReport:
        """Read an export back (ids, versions and figures kept); existing ids are skipped."""
        ...

    # -- the model tiers ---------------------------------------------------------------

    def chat(
        self,
        message: str,
        *,
        cube: str = DEFAULT_CUBE,
        history: Sequence[Mapping[str, str]] = (),
        max_new_tokens: int = 64,
        use_snapshot: bool = True,
    ) -> Reply:
        """Answer with the cube's memories: its attached adapters, its newest valid
        KV snapshot, else its best memories as text."""
        ...

    def build_snapshot(
        self,
        cube: str = DEFAULT_CUBE,
        *,
        query: str | None = None,
        items: Sequence[MemoryRecord] | None = None,
        max_tokens: int = 1024,
        dtype: str = DEFAULT_SNAPSHOT_DTYPE,
    ) -> SnapshotInfo:
        """Snapshot the KV cache of a block of memories (the given items, the best
        for ``query``, or the newest), within ``max_tokens``."""
        ...

    def consolidate(
        self,
        cube: str = DEFAULT_CUBE,
        *,
        items: Sequence[MemoryRecord] | None = None,
        filter: FilterArg = None,
        progress: Progress | None = None,
        **options: Unpack[TrainOptions],
    ) -> AdapterInfo:
        """Train a side-GLU adapter on memories (given, or the cube's matching
        ``filter``); it starts detached."""
        ...

    def snapshots(self, cube: str | None = None) -> builtins.list[SnapshotInfo]:
        """KV snapshots of a cube (all cubes when ``None``), newest first."""
        ...

    def remove_snapshot(self, snapshot_id: str) -> None:
        """Delete a snapshot's file and registration."""
        ...

    def adapters(self, cube: str | None = None) -> builtins.list[AdapterInfo]:
        """Adapters of a cube (all cubes when ``None``), newest first."""
        ...

    def attach_adapter(self, adapter_id: str) -> AdapterInfo:
        """Attach an adapter: its cube's chats are answered with it on the model."""
        ...

    def detach_adapter(self, adapter_id: str) -> AdapterInfo:
        """Detach an adapter (its file stays)."""
        ...

    def remove_adapter(self, adapter_id: str) -> None:
        """Delete an adapter's file and registration (detaching it first)."""
        ...

    def jobs(
        self, statuses: Sequence[str] | None = None, limit: int = 200
    ) -> builtins.list[JobInfo]:
        """Recent jobs (snapshot builds, trainings, scheduler steps), newest run first."""
        ...

    def job(self, job_id: str) -> JobInfo:
        """One job, with its status and result."""
        ...
