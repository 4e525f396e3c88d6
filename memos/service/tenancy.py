"""A tenant's view of one store: the only way the service doors reach memory.

:class:`TenantMemos` wraps an embedded :class:`memos.client.Memos` (one core
shared by every tenant) and confines each call to one tenant:

1. cube names from the caller are checked in the plain form (no ``/``) and
   mapped to the tenant's stored names (:func:`memos.store.cubes.stored_name`);
2. an item, job or artifact named by id is first checked to lie in one of the
   tenant's cubes; another tenant's object raises the same ``NotFoundError``
   as a missing one, so existence is not leaked;
3. everything handed back names cubes as the tenant sees them.

The tenant comes from the caller's API key (:mod:`memos.service.keys`), never
from a request field.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import io
import json
import queue
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any, TypeVar, cast

from sqlalchemy import select

from memos import store
from memos.client import Memos
from memos.errors import (
    ImportFormatError,
    InvalidInputError,
    UnknownAdapterError,
    UnknownItemError,
    UnknownJobError,
    UnknownSnapshotError,
)
from memos.lifecycle.decay import StateChange
from memos.model_tiers import DEFAULT_CUBE
from memos.parametric.config import TrainConfig
from memos.plaintext import ingest
from memos.plaintext.filters import SearchFilter
from memos.records import (
    ContextBlock,
    CubeStats,
    ImportReport,
    MemoryRecord,
    MemoryVersion,
    SearchHit,
)
from memos.scheduler import jobs
from memos.scheduler.jobs import JobInfo
from memos.scheduler.steps import BuildSnapshot, TrainAdapter
from memos.store.cubes import split_name, stored_name
from memos.store.models import Artifact, Cube, Item

if TYPE_CHECKING:
    from memos.chat import Reply

R = TypeVar("R")
#: The rule named on the jobs (and events) of work a caller asked for.
REQUESTED = "requested"
Filter = SearchFilter | Mapping[str, Any] | None


def _public(value: R) -> R:
    """``value`` (a record with a ``cube`` field) naming its cube as its tenant sees it."""
    return dataclasses.replace(value, cube=split_name(value.cube)[1])  # type: ignore[type-var,attr-defined]


class _LineSink(io.TextIOBase):
    """A text stream whose writes go to a bounded queue, for a reader in another thread."""

    def __init__(self, lines: queue.Queue[object], cancelled: threading.Event) -> None:
        self.lines = lines
        self.cancelled = cancelled

    def write(self, text: str) -> int:
        self.put(text)
        return len(text)

    def put(self, item: object) -> None:
        while not self.cancelled.is_set():
            try:
                self.lines.put(item, timeout=0.5)
                return
            except queue.Full:
                continue
        raise InterruptedError("export cancelled: the reader went away")


def _streamed_export(mem: Memos, cube: str) -> Iterator[str]:
    """``mem.export_jsonl(cube=cube)`` line by line, written by a helper thread into
    a bounded queue (the reader closing the iterator stops the writer)."""
    lines: queue.Queue[object] = queue.Queue(maxsize=256)
    cancelled = threading.Event()
    done = object()

    sink = _LineSink(lines, cancelled)

    def produce() -> None:
        try:
            mem.export_jsonl(cast(IO[str], sink), cube=cube)
            sink.put(done)
        except InterruptedError:
            pass
        except Exception as exc:  # handed to the reader, raised there
            with contextlib.suppress(InterruptedError):
                sink.put(exc)

    writer = threading.Thread(target=produce, name="memos-export", daemon=True)
    writer.start()
    try:
        while True:
            item = lines.get()
            if item is done:
                return
            if isinstance(item, Exception):
                raise item
            # only "\n" ends a line: str.splitlines() would also split inside a
            # text holding U+2028 or a form feed (found by the schema fuzzer)
            yield from str(item).rstrip("\n").split("\n")
    finally:
        cancelled.set()
        writer.join(timeout=5)


class TenantMemos:
    """One tenant's memory in a shared store (the embedded SDK's methods, confined).

    Args:
        mem: the store's embedded façade (shared by every tenant's view).
        tenant: the tenant every call is confined to.
    """

    def __init__(self, mem: Memos, tenant: str) -> None:
        if not ingest.TENANT_NAME.match(tenant):
            raise InvalidInputError(
                f"tenant {tenant!r} is invalid: use 1-64 lowercase letters, digits, '_' or '-', "
                "starting with a letter or digit"
            )
        self.mem = mem
        self.tenant = tenant

    # -- names and ownership ---------------------------------------------------

    def stored(self, cube: str) -> str:
        """The stored name of this tenant's cube ``cube`` (checked)."""
        ingest.check_cube_name(cube, stored=False)
        name = stored_name(self.tenant, cube)
        if len(name) > 200:
            raise InvalidInputError(f"cube name {cube!r} is too long for tenant {self.tenant!r}")
        return name

    def _own_item(self, item_id: str) -> None:
        if not isinstance(item_id, str):
            raise UnknownItemError(f"no memory item with id {item_id!r}")
        with self.mem.db.read() as session:
            tenant = session.scalar(
                select(Cube.tenant).join(Item, Item.cube_pk == Cube.pk).where(Item.id == item_id)
            )
        if tenant != self.tenant:
            raise UnknownItemError(f"no memory item with id {item_id!r}")

    def _own_artifact(self, artifact_id: str) -> bool:
        with self.mem.db.read() as session:
            tenant = session.scalar(
                select(Cube.tenant)
                .join(Artifact, Artifact.cube_pk == Cube.pk)
                .where(Artifact.id == artifact_id)
            )
        return tenant == self.tenant

    # -- cubes -------------------------------------------------------------------

    def cubes(self) -> list[str]:
        """Names of the tenant's cubes."""
        with self.mem.db.read() as session:
            return store.cube_names(session, self.tenant)

    def create_cube(self, name: str) -> str:
        self.mem.create_cube(self.stored(name))
        return name

    def stats(self, cube: str = DEFAULT_CUBE) -> CubeStats:
        return _public(self.mem.stats(self.stored(cube)))

    # -- writing -------------------------------------------------------------------

    def add(self, text: str, *, cube: str = DEFAULT_CUBE, **fields: Any) -> MemoryRecord:
        return _public(self.mem.add(text, cube=self.stored(cube), **fields))

    def add_many(
        self,
        entries: Iterable[str | Mapping[str, Any]],
        *,
        cube: str = DEFAULT_CUBE,
        **defaults: Any,
    ) -> list[MemoryRecord]:
        return [_public(r) for r in self.mem.add_many(entries, cube=self.stored(cube), **defaults)]

    def add_messages(
        self,
        messages: Iterable[Mapping[str, Any]],
        *,
        cube: str = DEFAULT_CUBE,
        prefix_speaker: bool = True,
        **defaults: Any,
    ) -> list[MemoryRecord]:
        records = self.mem.add_messages(
            messages, cube=self.stored(cube), prefix_speaker=prefix_speaker, **defaults
        )
        return [_public(r) for r in records]

    def add_document(
        self, text: str, *, cube: str = DEFAULT_CUBE, **defaults: Any
    ) -> list[MemoryRecord]:
        return [_public(r) for r in self.mem.add_document(text, cube=self.stored(cube), **defaults)]

    def update(self, item_id: str, text: str | None = None, **changes: Any) -> MemoryRecord:
        self._own_item(item_id)
        return _public(self.mem.update(item_id, text, **changes))

    def delete(self, item_id: str, reason: str = "user") -> MemoryRecord:
        self._own_item(item_id)
        return _public(self.mem.delete(item_id, reason))

    def restore(self, item_id: str) -> MemoryRecord:
        self._own_item(item_id)
        return _public(self.mem.restore(item_id))

    def purge(self, item_id: str, reason: str = "user") -> None:
        self._own_item(item_id)
        self.mem.purge(item_id, reason)

    # -- reading -------------------------------------------------------------------

    def get(self, item_id: str) -> MemoryRecord:
        self._own_item(item_id)
        return _public(self.mem.get(item_id))

    def history(self, item_id: str) -> list[MemoryVersion]:
        self._own_item(item_id)
        return self.mem.history(item_id)

    def search(
        self,
        query: str,
        *,
        cube: str = DEFAULT_CUBE,
        k: int = 10,
        filter: Filter = None,
        mode: str = "hybrid",
    ) -> list[SearchHit]:
        hits = self.mem.search(query, cube=self.stored(cube), k=k, filter=filter, mode=mode)
        return [dataclasses.replace(h, item=_public(h.item)) for h in hits]

    def context(
        self,
        query: str,
        *,
        budget_tokens: int = 512,
        cube: str = DEFAULT_CUBE,
        k: int = 20,
        filter: Filter = None,
    ) -> ContextBlock:
        block = self.mem.context(
            query, budget_tokens=budget_tokens, cube=self.stored(cube), k=k, filter=filter
        )
        return dataclasses.replace(block, items=[_public(r) for r in block.items])

    def mark_used(self, item_ids: Iterable[str]) -> None:
        ids = [item_ids] if isinstance(item_ids, str) else list(item_ids)
        for item_id in ids:
            self._own_item(item_id)
        self.mem.mark_used(ids)

    def list(
        self, *, cube: str = DEFAULT_CUBE, filter: Filter = None, limit: int = 50, offset: int = 0
    ) -> list[MemoryRecord]:
        records = self.mem.list(cube=self.stored(cube), filter=filter, limit=limit, offset=offset)
        return [_public(r) for r in records]

    # -- lifecycle -----------------------------------------------------------------

    def decay(
        self, *, cube: str | None = None, now: datetime | None = None, dry_run: bool = False
    ) -> builtins.list[StateChange]:
        """Decay one cube, or each of the tenant's cubes when ``cube`` is None."""
        cubes = [cube] if cube is not None else self.cubes()
        changes: list[StateChange] = []
        for name in cubes:
            changes += self.mem.decay(cube=self.stored(name), now=now, dry_run=dry_run)
        return [_public(c) for c in changes]

    # -- export and import -----------------------------------------------------------

    def export_lines(self, cube: str | None = None) -> Iterator[str]:
        """The tenant's items (one cube, or all) as export JSON lines, header first
        (streamed: memory stays bounded whatever the cube's size)."""
        names = [cube] if cube is not None else self.cubes()
        stored = [self.stored(name) for name in names]
        for name in stored:
            self.mem.core.cube(name)  # an unknown cube is an error before anything is sent
        yield json.dumps({"memos_export": 1, "cubes": names}) + "\n"
        for name in stored:
            lines = _streamed_export(self.mem, name)
            next(lines)  # the cube's own header
            for line in lines:
                data = json.loads(line)
                data["cube"] = split_name(data["cube"])[1]
                yield json.dumps(data, ensure_ascii=False) + "\n"

    def export_jsonl(self, out: IO[str], *, cube: str | None = None) -> int:
        count = -1
        for line in self.export_lines(cube):
            out.write(line)
            count += 1
        return count

    def import_jsonl(self, source: IO[str], *, cube: str | None = None) -> ImportReport:
        """Import an export into the tenant's cubes (the names in the file are the
        tenant's; ``cube`` puts everything into one)."""
        lines = []
        for number, line in enumerate(source, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                raise ImportFormatError(f"line {number}: not JSON") from None
            if isinstance(data, dict) and isinstance(data.get("cube"), str):
                data["cube"] = self.stored(cube if cube is not None else data["cube"])
            lines.append(json.dumps(data, ensure_ascii=False))
        report = self.mem.import_jsonl(
            io.StringIO("\n".join(lines) + "\n"),
            cube=self.stored(cube) if cube is not None else None,
        )
        return dataclasses.replace(report, cubes=[split_name(c)[1] for c in report.cubes])

    # -- jobs and artifacts ----------------------------------------------------------

    def jobs(
        self, statuses: tuple[str, ...] | None = None, limit: int | None = 200
    ) -> builtins.list[JobInfo]:
        """The tenant's recent jobs (those of its cubes), newest run first."""
        found = self.mem.scheduler.jobs(statuses, limit, tenant=self.tenant)
        return [_public(job) for job in found]

    def job(self, job_id: str) -> JobInfo:
        found = jobs.rows(self.mem.db, None, 1, tenant=self.tenant, job_id=job_id)
        if not found:
            raise UnknownJobError(f"no job with id {job_id!r}")
        return _public(found[0][1])

    def plan(self, cube: str) -> dict[str, Any]:
        """What a scheduler run on the tenant's cube would do now (nothing written)."""
        plan = self.mem.scheduler.plan(self.stored(cube)).to_dict()
        for step in plan["steps"]:
            step["cube"] = split_name(step["cube"])[1]
        return plan

    def enqueue_run(self, cube: str) -> tuple[str, builtins.list[str]]:
        """Plan the tenant's cube and queue the steps as jobs: (run id, job ids)."""
        return self.mem.scheduler.enqueue(self.stored(cube))

    def apply_jobs(self, job_ids: builtins.list[str], wait_s: float = 60.0) -> None:
        """Apply queued jobs of the tenant (only its own; others are skipped)."""
        mine = {job.id for job in self.jobs(limit=None)}
        self.mem.scheduler.apply([j for j in job_ids if j in mine], wait_s=wait_s)

    def snapshots(self, cube: str | None = None) -> builtins.list[Any]:
        """The tenant's KV snapshots (one cube, or all)."""
        return [_public(s) for s in self.mem.activation.snapshots() if self._mine(s.cube, cube)]

    def remove_snapshot(self, snapshot_id: str) -> None:
        if not self._own_artifact(snapshot_id):
            raise UnknownSnapshotError(f"no snapshot with id {snapshot_id!r}")
        self.mem.activation.remove(snapshot_id)

    def adapters(self, cube: str | None = None) -> builtins.list[Any]:
        """The tenant's adapters (one cube, or all)."""
        return [_public(a) for a in self.mem.parametric.adapters() if self._mine(a.cube, cube)]

    def remove_adapter(self, adapter_id: str) -> None:
        if not self._own_artifact(adapter_id):
            raise UnknownAdapterError(f"no adapter with id {adapter_id!r}")
        self.mem.parametric.remove(adapter_id)

    def _mine(self, stored: str, cube: str | None) -> bool:
        tenant, name = split_name(stored)
        return tenant == self.tenant and (cube is None or name == cube)

    # -- the language model ------------------------------------------------------------

    def _chosen(self, cube: str, item_ids: builtins.list[str]) -> tuple[str, ...]:
        """``item_ids`` checked to be items of the tenant's ``cube`` (else not found)."""
        stored = self.stored(cube)
        with self.mem.db.read() as session:
            found = set(
                session.scalars(
                    select(Item.id)
                    .join(Cube, Cube.pk == Item.cube_pk)
                    .where(Item.id.in_(item_ids), Cube.name == stored)
                )
            )
        for item_id in item_ids:
            if item_id not in found:
                raise UnknownItemError(f"no memory item with id {item_id!r}")
        return tuple(dict.fromkeys(item_ids))

    def enqueue_snapshot(
        self,
        cube: str,
        *,
        items: builtins.list[str] | None = None,
        query: str | None = None,
        max_tokens: int = 1024,
        dtype: str = "float32",
    ) -> tuple[str, builtins.list[str]]:
        """Queue a snapshot build of the tenant's cube (the given items, the best for
        ``query``, or the newest, as ``Memos.build_snapshot`` chooses): (run id, job ids).

        The items are chosen now, so the job builds what the caller asked for.
        """
        if items is not None:
            chosen = self._chosen(cube, items)
        elif query:
            chosen = tuple(h.item.id for h in self.search(query, cube=cube, k=100))
        else:
            chosen = tuple(r.id for r in self.list(cube=cube, limit=500))
        if not chosen:
            raise InvalidInputError(f"cube {cube!r} has no memories to snapshot")
        if max_tokens < 16:
            raise InvalidInputError(f"max_tokens={max_tokens}; allowed: >= 16")
        step = BuildSnapshot(self.stored(cube), REQUESTED, chosen, max_tokens, dtype)
        return self.mem.scheduler.enqueue_steps([step])

    def enqueue_training(
        self,
        cube: str,
        *,
        items: builtins.list[str] | None = None,
        filter: Filter = None,
        config: TrainConfig | None = None,
    ) -> tuple[str, builtins.list[str]]:
        """Queue training an adapter of the tenant's cube (the given items, or those
        matching ``filter``, as ``Memos.consolidate`` chooses): (run id, job ids)."""
        stored = self.stored(cube)
        if items is not None:
            chosen = self._chosen(cube, items)
        else:
            chosen = tuple(r.id for r in self.mem.iterate(cube=stored, filter=filter))
        if not chosen:
            raise InvalidInputError(f"cube {cube!r} has no memories to consolidate")
        step = TrainAdapter(stored, REQUESTED, chosen, config or TrainConfig())
        return self.mem.scheduler.enqueue_steps([step])

    def chat(
        self,
        message: str,
        *,
        cube: str = DEFAULT_CUBE,
        history: Sequence[dict[str, str]] = (),
        max_new_tokens: int = 64,
        use_snapshot: bool = True,
    ) -> Reply:
        """``Memos.chat`` on the tenant's cube (its snapshots, adapters and memories only)."""
        stored = self.stored(cube)
        self.mem.core.cube(stored)  # an unknown cube is an error before the model loads
        return self.mem.chat(
            message,
            cube=stored,
            history=history,
            max_new_tokens=max_new_tokens,
            use_snapshot=use_snapshot,
        )

    def attach_adapter(self, adapter_id: str) -> Any:
        """Mark the tenant's adapter attached (see ``ParametricTier.attach``)."""
        if not self._own_artifact(adapter_id):
            raise UnknownAdapterError(f"no adapter with id {adapter_id!r}")
        return _public(self.mem.parametric.attach(adapter_id))

    def detach_adapter(self, adapter_id: str) -> Any:
        """Mark the tenant's adapter detached (see ``ParametricTier.detach``)."""
        if not self._own_artifact(adapter_id):
            raise UnknownAdapterError(f"no adapter with id {adapter_id!r}")
        return _public(self.mem.parametric.detach(adapter_id))
