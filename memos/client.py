"""The Python SDK: ``Memos``, one object an agent loop keeps for its memory.

``Memos`` is the embedded implementation of :class:`memos.api.MemoryAPI`. It
composes the parts over one :class:`memos.core.Core`: the plaintext
:class:`~memos.plaintext.writer.Writer` (every change) and
:class:`~memos.plaintext.reader.Reader` (every read), the
:class:`~memos.model_tiers.ModelTiers` (chat, snapshots, adapters) and the
:class:`~memos.scheduler.runner.Scheduler`; each method hands over to one of
them. Follow one ``add``: validate (:mod:`memos.plaintext.ingest`) → skip what
is stored → embed what is new → one write transaction → index. One
``search``: :meth:`Reader.search` → :class:`~memos.plaintext.retrieval.Retriever`.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from typing_extensions import Unpack

from memos import store
from memos.api import MemoryAPI
from memos.clock import Clock
from memos.config import MemosConfig
from memos.core import Core
from memos.errors import InvalidInputError, UnknownJobError
from memos.fields import (
    DEFAULT_CUBE,
    DEFAULT_SNAPSHOT_DTYPE,
    ItemFields,
    Progress,
    TrainOptions,
    UpdateFields,
)
from memos.filters import FilterArg
from memos.lifecycle.decay import apply_decay, plan_decay
from memos.model_jobs import RayJobs
from memos.model_tiers import ModelTiers
from memos.plaintext import ingest
from memos.plaintext.context import approx_tokens
from memos.plaintext.reader import Reader
from memos.plaintext.writer import Writer
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
from memos.scheduler import jobs as scheduler_jobs
from memos.scheduler.runner import Scheduler
from memos.validation import FIELD_LIMITS, check_cube_name, check_id, check_string, parse_time

if TYPE_CHECKING:
    from memos.activation.tier import ActivationTier
    from memos.lm import LanguageModel
    from memos.parametric.tier import ParametricTier
    from memos.plaintext.embedder import Embedder
    from memos.plaintext.indexes import IndexManager
    from memos.scheduler.background import BackgroundScheduler
    from memos.service.remote import RemoteMemos
    from memos.store.db import Database


class Memos(MemoryAPI):
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
        self.reader = Reader(self.core, token_counter or approx_tokens)
        self.tiers = ModelTiers(self.core, self.reader)
        self.model_jobs = RayJobs(self.config, self.db) if self.config.jobs != "local" else None
        self.scheduler = Scheduler(
            self.core,
            lambda: self.tiers.activation,
            lambda: self.tiers.parametric,
            self.model_jobs,
        )
        self._background: BackgroundScheduler | None = None
        self._closed = False
        self._lock = threading.Lock()

    @staticmethod
    def connect(url: str, *, api_key: str | None = None, timeout: float = 30.0) -> RemoteMemos:
        """A memos service at ``url`` (``memos serve``) with this class's methods,
        records and typed errors; the key picks the tenant."""
        from memos.service.remote import RemoteMemos

        return RemoteMemos(url, api_key=api_key, timeout=timeout)

    def check_setup(self) -> None:
        """Reach what the configuration names beyond the database now: the shared
        artifact store and the Ray cluster (``ConfigError`` in one line when one
        cannot be reached). ``memos serve`` calls it before its workers start."""
        self.core.artifact_files.check()
        if self.model_jobs is not None:
            self.model_jobs.connect()

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

    @property
    def lm(self) -> LanguageModel:
        """The language model, loaded on first use."""
        return self.core.lm

    @property
    def activation(self) -> ActivationTier:
        """The activation tier (KV snapshots); torch loads on first use."""
        return self.tiers.activation

    @property
    def parametric(self) -> ParametricTier:
        """The parametric tier (side-GLU adapters); torch loads on first use."""
        return self.tiers.parametric

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
        check_cube_name(name)
        if owner_id is not None:
            check_string(owner_id, "owner_id", FIELD_LIMITS["user_id"])
        self.db.write(lambda s: store.ensure_cube(s, name, self.clock.now(), owner_id))
        return name

    def cubes(self) -> list[str]:
        """Names of all cubes."""
        with self.db.read() as session:
            return store.cube_names(session)

    def stats(self, cube: str = DEFAULT_CUBE) -> CubeStats:
        """Counts by state, versions, tags, embeddings and index figures of a cube."""
        return self.reader.stats(cube)

    # -- writing -------------------------------------------------------------

    def add(
        self, text: str, *, cube: str = DEFAULT_CUBE, **fields: Unpack[ItemFields]
    ) -> MemoryRecord:
        """Store one memory and return it (the stored one, if the text is already there).

        Keyword fields (:class:`memos.fields.ItemFields`): ``metadata``, ``tags``,
        ``user_id``, ``agent_id``, ``source``, ``session_id``, ``speaker``,
        ``role``, ``event_time``, ``pinned`` (never decays), ``trust``,
        ``importance`` (0..1: a higher initial stability, so it fades more
        slowly). Text longer than ``config.max_text_chars`` raises
        ``TextTooLongError``; use :meth:`add_document` to chunk it.
        """
        check_cube_name(cube)
        item = ingest.from_mapping({"text": text, **fields}, self.config.max_text_chars, {})
        return self.writer.store([item], cube)[0]

    def add_many(
        self,
        entries: Iterable[str | Mapping[str, Any]],
        *,
        cube: str = DEFAULT_CUBE,
        progress: Progress | None = None,
        **defaults: Unpack[ItemFields],
    ) -> list[MemoryRecord]:
        """Store many memories with batched embedding; returns them in input order.

        Each entry is a string or a dict of :meth:`add`'s fields; ``defaults``
        apply to every entry. All entries are validated before any is stored.
        ``progress(done, total)`` is called after each batch.
        """
        check_cube_name(cube)
        if isinstance(entries, str | bytes | Mapping):
            raise InvalidInputError("entries must be a list of strings or item dicts")
        items = [ingest.from_mapping(e, self.config.max_text_chars, defaults) for e in entries]
        return self.writer.store(items, cube, progress)

    def add_messages(
        self,
        messages: Iterable[Mapping[str, Any]],
        *,
        cube: str = DEFAULT_CUBE,
        prefix_speaker: bool = True,
        progress: Progress | None = None,
        **defaults: Unpack[ItemFields],
    ) -> list[MemoryRecord]:
        """Store each chat turn (``role``, ``content``, optional ``name``,
        ``timestamp``, ``metadata``) as one item keeping speaker and time."""
        check_cube_name(cube)
        items = ingest.from_messages(
            messages,
            max_chars=self.config.max_text_chars,
            prefix_speaker=prefix_speaker,
            defaults=defaults,
        )
        return self.writer.store(items, cube, progress)

    def add_document(
        self, text: str, *, cube: str = DEFAULT_CUBE, **defaults: Unpack[ItemFields]
    ) -> list[MemoryRecord]:
        """Store a long text as overlapping chunks (``config.chunk_chars`` /
        ``chunk_overlap``), each an item whose metadata names the document."""
        check_cube_name(cube)
        items = ingest.from_document(
            text,
            chunk_chars=self.config.chunk_chars,
            overlap=self.config.chunk_overlap,
            max_chars=self.config.max_text_chars,
            defaults=defaults,
        )
        return self.writer.store(items, cube)

    def update(
        self, item_id: str, text: str | None = None, **changes: Unpack[UpdateFields]
    ) -> MemoryRecord:
        """Make a new version of an item; the old one stays in :meth:`history`.

        Accepts ``text`` and the fields of :class:`memos.fields.UpdateFields`
        (each replaces the old value; ``reason`` is recorded). Raises
        ``DuplicateError`` when the new text equals another live item of the cube.
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
        return self.reader.get(item_id)

    def history(self, item_id: str) -> list[MemoryVersion]:
        """Every version of an item, oldest first."""
        return self.reader.history(item_id)

    def search(
        self,
        query: str,
        *,
        cube: str = DEFAULT_CUBE,
        k: int = 10,
        filter: FilterArg = None,
        mode: str = "hybrid",
    ) -> list[SearchHit]:
        """The ``k`` memories that best match ``query``, with score parts.

        ``mode`` is ``"hybrid"`` (dense + keyword), ``"dense"`` or ``"keyword"``;
        ``filter`` is a :class:`SearchFilter` or a dict of its fields.
        """
        return self.reader.search(query, cube, k, filter, mode)

    def context(
        self,
        query: str,
        *,
        budget_tokens: int = 512,
        cube: str = DEFAULT_CUBE,
        k: int = 20,
        filter: FilterArg = None,
    ) -> ContextBlock:
        """The best memories for ``query`` as a prompt block within ``budget_tokens``.

        The memories in the block count as recalled (see :mod:`memos.lifecycle.recall`).
        """
        return self.reader.context(query, budget_tokens, cube, k, filter)

    def mark_used(self, item_ids: Iterable[str]) -> None:
        """Count memories as recalled (the agent used them): their stability grows.

        Written in the background within ``config.recall_flush_s`` seconds;
        unknown ids raise ``UnknownItemError`` before anything is counted.
        """
        self.reader.mark_used(item_ids)

    def list(
        self,
        *,
        cube: str = DEFAULT_CUBE,
        filter: FilterArg = None,
        limit: int = 50,
        offset: int = 0,
    ) -> builtins.list[MemoryRecord]:
        """Items of a cube, newest first."""
        return self.reader.list(cube, filter, limit, offset)

    def iterate(
        self, *, cube: str = DEFAULT_CUBE, filter: FilterArg = None, batch: int = 500
    ) -> Iterator[MemoryRecord]:
        """Every matching item of a cube, oldest first, read in batches."""
        return self.reader.iterate(cube, filter, batch)

    # -- lifecycle ------------------------------------------------------------

    def retention(self, item_id: str, at: datetime | None = None) -> float:
        """The item's retention R at ``at`` (default now) under ``config.retention``."""
        when = parse_time(at, "at") or self.clock.now()
        return self.config.retention.retention(self.get(item_id), when)

    def decay(
        self, *, cube: str | None = None, now: datetime | None = None, dry_run: bool = False
    ) -> builtins.list[StateChange]:
        """Move items down the states their retention calls for (see :mod:`memos.lifecycle.decay`).

        ``now`` defaults to the clock; with ``dry_run`` nothing is written.
        Returns the moves (planned ones on a dry run).
        """
        self.core.recalls.flush()
        at = parse_time(now, "now") or self.clock.now()
        cube_pk = self.core.cube(cube).pk if cube is not None else None
        changes = plan_decay(self.db, self.config.retention, at, cube_pk)
        if not dry_run and changes:
            apply_decay(self.db, changes, at, "decay")
        return changes

    # -- maintenance, export and import -------------------------------------------

    def rebuild_index(self, cube: str = DEFAULT_CUBE, progress: Progress | None = None) -> int:
        """Rebuild a cube's dense index from the database; returns its size."""
        cube_ref = self.core.cube(cube)
        index = self.indexes.rebuild(cube_ref, progress)
        self.db.write(
            lambda s: store.log_event(
                s,
                self.clock.now(),
                "index.rebuild",
                cube_pk=cube_ref.pk,
                details={"entries": len(index)},
            )
        )
        return len(index)

    def export_jsonl(self, out: str | Path | IO[str], *, cube: str | None = None) -> int:
        """Write items (every state, with versions) as JSON lines; returns the count.

        A path is written atomically (a failed export leaves no partial file);
        a path inside the home or naming a database file raises ``PathError``.
        """
        from memos.plaintext.transfer import export_items

        return export_items(self.db, out, cube, self.config.home)

    def import_jsonl(
        self, source: str | Path | IO[str], *, cube: str | None = None
    ) -> ImportReport:
        """Read an export back (ids, versions and figures kept); ids already in
        this tenant's cubes are skipped (see :mod:`memos.store.transfer`)."""
        from memos.plaintext.transfer import import_items

        return import_items(self.writer, source, cube)

    # -- the model tiers ----------------------------------------------------------------

    def chat(
        self,
        message: str,
        *,
        cube: str = DEFAULT_CUBE,
        history: Sequence[Mapping[str, str]] = (),
        max_new_tokens: int = 64,
        use_snapshot: bool = True,
    ) -> Reply:
        """Answer with the cube's memories: its attached adapters, its newest valid KV
        snapshot (no prefill of the memories), else its best memories as text."""
        return self.tiers.chat(message, cube, history, max_new_tokens, use_snapshot)

    def chat_stream(
        self,
        message: str,
        *,
        on_text: Callable[[str], None] | None,
        cube: str = DEFAULT_CUBE,
        history: Sequence[Mapping[str, str]] = (),
        max_new_tokens: int = 64,
        use_snapshot: bool = True,
        instructions: str = "",
    ) -> Reply:
        """:meth:`chat`, handing the reply's text to ``on_text`` piece by piece as
        it is decoded, with the caller's own system text (``instructions``) after
        the memory block (the OpenAI-compatible endpoint's way in)."""
        return self.tiers.chat(
            message, cube, history, max_new_tokens, use_snapshot, instructions, on_text
        )

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
        for ``query``, or the newest), within ``max_tokens``.

        The same item given twice is snapshotted once.
        """
        return self.tiers.build_snapshot(cube, query, items, max_tokens, dtype)

    def consolidate(
        self,
        cube: str = DEFAULT_CUBE,
        *,
        items: Sequence[MemoryRecord] | None = None,
        filter: FilterArg = None,
        progress: Progress | None = None,
        **options: Unpack[TrainOptions],
    ) -> AdapterInfo:
        """Train a side-GLU adapter on memories (given, or the cube's matching ``filter``).

        ``options`` are :class:`memos.fields.TrainOptions` (``rank``, ``layers``,
        ``steps``, ``lr``, ``locality_weight``, ...). The adapter starts
        detached: :meth:`attach_adapter` puts it on the model.
        """
        return self.tiers.consolidate(cube, items, filter, progress, options)

    def snapshots(self, cube: str | None = None) -> builtins.list[SnapshotInfo]:
        """KV snapshots of a cube (all cubes when ``None``), newest first."""
        return self.activation.snapshots(cube)

    def remove_snapshot(self, snapshot_id: str) -> None:
        """Delete a snapshot's file and registration."""
        self.activation.remove(snapshot_id)

    def adapters(self, cube: str | None = None) -> builtins.list[AdapterInfo]:
        """Adapters of a cube (all cubes when ``None``), newest first."""
        return self.parametric.adapters(cube)

    def attach_adapter(self, adapter_id: str) -> AdapterInfo:
        """Attach an adapter to the model (recorded: every process attaches it)."""
        return self.parametric.attach(adapter_id)

    def detach_adapter(self, adapter_id: str) -> AdapterInfo:
        """Take an adapter off the model (offload); its file stays."""
        return self.parametric.detach(adapter_id)

    def remove_adapter(self, adapter_id: str) -> None:
        """Delete an adapter's file and registration (detaching it first)."""
        self.parametric.remove(adapter_id)

    # -- jobs and the scheduler ------------------------------------------------------

    def jobs(
        self, statuses: Sequence[str] | None = None, limit: int = 200
    ) -> builtins.list[JobInfo]:
        """Recent jobs (scheduler steps, snapshot builds, trainings), newest run first."""
        return self.scheduler.jobs(tuple(statuses) if statuses is not None else None, limit)

    def job(self, job_id: str) -> JobInfo:
        """One job, with its status and result."""
        check_id(job_id, "job", UnknownJobError)
        found = scheduler_jobs.rows(self.db, None, 1, job_id=job_id)
        if not found:
            raise UnknownJobError(f"no job with id {job_id!r}")
        return found[0][1]

    def start_scheduler(
        self, every_minutes: float | None = None, *, cube: str | None = None
    ) -> BackgroundScheduler:
        """Run the tier scheduler in a background thread every ``every_minutes``
        (default ``config.scheduler.interval_minutes``); :meth:`close` stops it."""
        with self._lock:
            if self._background is not None and self._background.running:
                raise InvalidInputError("the background scheduler is already running")
            minutes = every_minutes or self.config.scheduler.interval_minutes
            from memos.scheduler.background import BackgroundScheduler

            self._background = BackgroundScheduler(self.scheduler, minutes * 60, cube).start()
            return self._background

    def stop_scheduler(self) -> None:
        """Stop the background scheduler, if running (a run in progress finishes)."""
        if self._background is not None:
            self._background.stop()
