"""A tenant's view of one store: the only way the service doors reach memory.

:class:`TenantMemos` implements :class:`memos.api.MemoryAPI` over an embedded
:class:`memos.client.Memos` (one store shared by every tenant) and confines
each call to one tenant:

1. cube names from the caller are checked in the plain form (no ``/``) and
   mapped to the tenant's stored names (:func:`memos.store.cubes.stored_name`);
2. an item, job or artifact named by id is first checked (by the store) to lie
   in one of the tenant's cubes; another tenant's object raises the same
   ``NotFoundError`` as a missing one, so existence is not leaked;
3. everything handed back names cubes as the tenant sees them.

Long work a caller asks for (a snapshot build, a training) is queued as a
typed scheduler step, so it is a job row any worker can follow or resume; its
items are chosen when it is asked. The tenant comes from the caller's API key
(:mod:`memos.service.keys`), never from a request field.
"""

from __future__ import annotations

import builtins
import dataclasses
import io
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from typing_extensions import Unpack

from memos import store
from memos.api import MemoryAPI
from memos.errors import (
    ImportFormatError,
    InvalidInputError,
    NotFoundError,
    StoreError,
    UnknownAdapterError,
    UnknownItemError,
    UnknownJobError,
    UnknownSnapshotError,
)
from memos.fields import (
    DEFAULT_CUBE,
    DEFAULT_SNAPSHOT_DTYPE,
    ItemFields,
    Progress,
    TrainOptions,
    UpdateFields,
)
from memos.filters import FilterArg
from memos.parametric.config import TrainConfig
from memos.plaintext import ingest
from memos.plaintext.ingest import check_update
from memos.plaintext.transfer import export_lines, export_target
from memos.records import (
    AdapterInfo,
    ContextBlock,
    CubeStats,
    ImportReport,
    JobInfo,
    MemoryRecord,
    MemoryVersion,
    NewItem,
    Reply,
    SearchHit,
    SnapshotInfo,
    StateChange,
)
from memos.scheduler import jobs
from memos.scheduler.steps import BuildSnapshot, Step, TrainAdapter
from memos.store import artifacts
from memos.store.artifacts import relative_path
from memos.store.cubes import split_name, stored_name
from memos.store.files import atomic_path
from memos.validation import (
    CUBE_NAME_MAX_CHARS,
    check_cube_name,
    check_id,
    check_ids,
    check_reason,
    check_tenant,
    parse_json,
)

if TYPE_CHECKING:
    from memos.client import Memos

R = TypeVar("R")
#: The rule named on the jobs (and events) of work a caller asked for.
REQUESTED = "requested"
#: How long a synchronous build or training waits for the scheduler lock.
JOB_WAIT_S = 3600.0


def public(value: R) -> R:
    """``value`` (a record with a ``cube`` field) naming its cube as its tenant sees it."""
    return dataclasses.replace(value, cube=split_name(value.cube)[1])  # type: ignore[type-var,attr-defined]


A = TypeVar("A", SnapshotInfo, AdapterInfo)


def served(info: A, home: Path) -> A:
    """An artifact as a tenant sees it: its cube by the tenant's name and its file
    by its path under the store's home (never where the server keeps it)."""
    path = relative_path(home, Path(info.path)) if info.path else ""
    return dataclasses.replace(public(info), path=path)


class TenantMemos(MemoryAPI):
    """One tenant's memory in a shared store (the embedded SDK's methods, confined).

    Args:
        mem: the store's embedded façade (shared by every tenant's view).
        tenant: the tenant every call is confined to.
    """

    def __init__(self, mem: Memos, tenant: str) -> None:
        self.mem = mem
        self.tenant = check_tenant(tenant)
        self.core = mem.core
        self.tiers = mem.tiers
        self.scheduler = mem.scheduler

    @property
    def max_text_chars(self) -> int:
        """The longest text an item may hold (the store's setting)."""
        return self.core.config.max_text_chars

    # -- names and ownership ---------------------------------------------------

    def stored(self, cube: str) -> str:
        """The stored name of this tenant's cube ``cube`` (checked)."""
        check_cube_name(cube, stored=False)
        name = stored_name(self.tenant, cube)
        if len(name) > CUBE_NAME_MAX_CHARS:
            raise InvalidInputError(f"cube name {cube!r} is too long for tenant {self.tenant!r}")
        return name

    def _own_items(self, item_ids: Iterable[str]) -> builtins.list[str]:
        ids = check_ids(item_ids, "memory item", UnknownItemError)
        with self.core.db.read() as session:
            owners = store.ids_present(session, ids)
        for item_id in ids:
            if owners.get(item_id) != self.tenant:
                raise UnknownItemError(f"no memory item with id {item_id!r}")
        return ids

    def _own_artifact(self, artifact_id: str, error: type[NotFoundError], what: str) -> str:
        check_id(artifact_id, what, error)
        if artifacts.tenant_of(self.core.db, artifact_id) != self.tenant:
            raise error(f"no {what} with id {artifact_id!r}")
        return artifact_id

    def _mine(self, stored: str, cube: str | None) -> bool:
        tenant, name = split_name(stored)
        return tenant == self.tenant and (cube is None or name == cube)

    # -- cubes -------------------------------------------------------------------

    def cubes(self) -> builtins.list[str]:
        """Names of the tenant's cubes."""
        with self.core.db.read() as session:
            return store.cube_names(session, self.tenant)

    def create_cube(self, name: str, owner_id: str | None = None) -> str:
        self.mem.create_cube(self.stored(name), owner_id)
        return name

    def stats(self, cube: str = DEFAULT_CUBE) -> CubeStats:
        return public(self.mem.stats(self.stored(cube)))

    # -- writing -------------------------------------------------------------------

    def add(
        self, text: str, *, cube: str = DEFAULT_CUBE, **fields: Unpack[ItemFields]
    ) -> MemoryRecord:
        return public(self.mem.add(text, cube=self.stored(cube), **fields))

    def checked_add(self, text: str, cube: str, fields: Mapping[str, Any]) -> tuple[str, NewItem]:
        """An add checked by :meth:`add`'s rules but not stored: (stored cube name,
        item), for the service to store with other adds (see
        :mod:`memos.service.batching`)."""
        stored = self.stored(cube)
        return stored, ingest.from_mapping({"text": text, **fields}, self.max_text_chars, {})

    def add_many(
        self,
        entries: Iterable[str | Mapping[str, Any]],
        *,
        cube: str = DEFAULT_CUBE,
        progress: Progress | None = None,
        **defaults: Unpack[ItemFields],
    ) -> builtins.list[MemoryRecord]:
        added = self.mem.add_many(entries, cube=self.stored(cube), progress=progress, **defaults)
        return [public(r) for r in added]

    def add_messages(
        self,
        messages: Iterable[Mapping[str, Any]],
        *,
        cube: str = DEFAULT_CUBE,
        prefix_speaker: bool = True,
        progress: Progress | None = None,
        **defaults: Unpack[ItemFields],
    ) -> builtins.list[MemoryRecord]:
        records = self.mem.add_messages(
            messages,
            cube=self.stored(cube),
            prefix_speaker=prefix_speaker,
            progress=progress,
            **defaults,
        )
        return [public(r) for r in records]

    def add_document(
        self, text: str, *, cube: str = DEFAULT_CUBE, **defaults: Unpack[ItemFields]
    ) -> builtins.list[MemoryRecord]:
        return [public(r) for r in self.mem.add_document(text, cube=self.stored(cube), **defaults)]

    def update(
        self, item_id: str, text: str | None = None, **changes: Unpack[UpdateFields]
    ) -> MemoryRecord:
        check_update(text, changes, self.core.config.max_text_chars)
        self._own_items([item_id])
        return public(self.mem.update(item_id, text, **changes))

    def delete(self, item_id: str, reason: str = "user") -> MemoryRecord:
        check_reason(reason)
        self._own_items([item_id])
        return public(self.mem.delete(item_id, reason))

    def restore(self, item_id: str) -> MemoryRecord:
        self._own_items([item_id])
        return public(self.mem.restore(item_id))

    def purge(self, item_id: str, reason: str = "user") -> None:
        check_reason(reason)
        self._own_items([item_id])
        self.mem.purge(item_id, reason)

    # -- reading -------------------------------------------------------------------

    def get(self, item_id: str) -> MemoryRecord:
        self._own_items([item_id])
        return public(self.mem.get(item_id))

    def history(self, item_id: str) -> builtins.list[MemoryVersion]:
        self._own_items([item_id])
        return self.mem.history(item_id)

    def search(
        self,
        query: str,
        *,
        cube: str = DEFAULT_CUBE,
        k: int = 10,
        filter: FilterArg = None,
        mode: str = "hybrid",
    ) -> builtins.list[SearchHit]:
        hits = self.mem.search(query, cube=self.stored(cube), k=k, filter=filter, mode=mode)
        return [dataclasses.replace(h, item=public(h.item)) for h in hits]

    def context(
        self,
        query: str,
        *,
        budget_tokens: int = 512,
        cube: str = DEFAULT_CUBE,
        k: int = 20,
        filter: FilterArg = None,
    ) -> ContextBlock:
        block = self.mem.context(
            query, budget_tokens=budget_tokens, cube=self.stored(cube), k=k, filter=filter
        )
        return dataclasses.replace(block, items=[public(r) for r in block.items])

    def mark_used(self, item_ids: Iterable[str]) -> None:
        self.mem.mark_used(self._own_items(item_ids))

    def list(
        self,
        *,
        cube: str = DEFAULT_CUBE,
        filter: FilterArg = None,
        limit: int = 50,
        offset: int = 0,
    ) -> builtins.list[MemoryRecord]:
        records = self.mem.list(cube=self.stored(cube), filter=filter, limit=limit, offset=offset)
        return [public(r) for r in records]

    # -- lifecycle -----------------------------------------------------------------

    def decay(
        self, *, cube: str | None = None, now: datetime | None = None, dry_run: bool = False
    ) -> builtins.list[StateChange]:
        """Decay one cube, or each of the tenant's cubes when ``cube`` is None."""
        cubes = [cube] if cube is not None else self.cubes()
        changes: builtins.list[StateChange] = []
        for name in cubes:
            changes += self.mem.decay(cube=self.stored(name), now=now, dry_run=dry_run)
        return [public(c) for c in changes]

    # -- export and import -----------------------------------------------------------

    def export_lines(self, cube: str | None = None) -> Iterator[str]:
        """The tenant's items (one cube, or all) as export JSON lines, header first
        (streamed in batches: memory stays bounded whatever the cube's size).

        An unknown cube raises before the first line is made.
        """
        names = [cube] if cube is not None else self.cubes()
        stored = [self.stored(name) for name in names]
        for name in stored:
            self.core.cube(name)
        return self._lines(names, stored)

    def _lines(self, names: builtins.list[str], stored: builtins.list[str]) -> Iterator[str]:
        yield json.dumps({"memos_export": 1, "cubes": names}) + "\n"
        for name in stored:
            for line in export_lines(self.core.db, name):
                data = json.loads(line)
                data["cube"] = split_name(data["cube"])[1]
                yield json.dumps(data, ensure_ascii=False) + "\n"

    def export_jsonl(self, out: str | Path | IO[str], *, cube: str | None = None) -> int:
        if isinstance(out, str | Path):
            target = export_target(Path(out), self.core.config.home, self.core.db)
            with atomic_path(target) as tmp, tmp.open("w", encoding="utf-8") as handle:
                return self.export_jsonl(handle, cube=cube)
        count = -1
        for line in self.export_lines(cube):
            out.write(line)
            count += 1
        return count

    def import_jsonl(
        self, source: str | Path | IO[str], *, cube: str | None = None
    ) -> ImportReport:
        """Import an export into the tenant's cubes (the names in the file are the
        tenant's; ``cube`` puts everything into one). Ids another tenant holds
        are imported under fresh ids: the report never depends on other tenants."""
        if isinstance(source, str | Path):
            with open(source, encoding="utf-8") as handle:
                return self.import_jsonl(handle, cube=cube)
        lines = []
        for number, line in enumerate(source, 1):
            if not line.strip():
                continue
            data = parse_json(line, f"line {number}", ImportFormatError)
            if isinstance(data, dict) and isinstance(data.get("cube"), str):
                data["cube"] = self.stored(cube if cube is not None else data["cube"])
            lines.append(json.dumps(data, ensure_ascii=False))
        report = self.mem.import_jsonl(
            io.StringIO("\n".join(lines) + "\n"),
            cube=self.stored(cube) if cube is not None else None,
        )
        return dataclasses.replace(report, cubes=[split_name(c)[1] for c in report.cubes])

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
        """``Memos.chat`` on the tenant's cube (its snapshots, adapters and memories only)."""
        return self.mem.chat(
            message,
            cube=self.stored(cube),
            history=history,
            max_new_tokens=max_new_tokens,
            use_snapshot=use_snapshot,
        )

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
        """``Memos.chat_stream`` on the tenant's cube."""
        return self.mem.chat_stream(
            message,
            on_text=on_text,
            cube=self.stored(cube),
            history=history,
            max_new_tokens=max_new_tokens,
            use_snapshot=use_snapshot,
            instructions=instructions,
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
        """As ``Memos.build_snapshot``, run as a job now (see :meth:`enqueue_snapshot`)."""
        ids = [r.id for r in items] if items is not None else None
        _, job_ids = self.enqueue_snapshot(
            cube, items=ids, query=query, max_tokens=max_tokens, dtype=dtype
        )
        artifact_id = self._run(job_ids, "snapshot", None)
        return next(s for s in self.snapshots(cube) if s.id == artifact_id)

    def consolidate(
        self,
        cube: str = DEFAULT_CUBE,
        *,
        items: Sequence[MemoryRecord] | None = None,
        filter: FilterArg = None,
        progress: Progress | None = None,
        **options: Unpack[TrainOptions],
    ) -> AdapterInfo:
        """As ``Memos.consolidate``, run as a job now (see :meth:`enqueue_training`)."""
        ids = [r.id for r in items] if items is not None else None
        config = TrainConfig.from_options(options)
        _, job_ids = self.enqueue_training(cube, items=ids, filter=filter, config=config)
        artifact_id = self._run(job_ids, "adapter", progress)
        return next(a for a in self.adapters(cube) if a.id == artifact_id)

    def _run(self, job_ids: builtins.list[str], what: str, progress: Progress | None) -> str:
        """Apply queued jobs now; the artifact the last one made (its error raised)."""
        done = self.scheduler.apply(job_ids, wait_s=JOB_WAIT_S)
        if progress is not None:
            progress(len(done), len(job_ids))
        info = done[-1] if done else self.job(job_ids[-1])
        if info.status == "failed":
            raise job_error(info)
        if "artifact" not in info.result:
            raise InvalidInputError(
                f"no {what} was made: {info.result.get('skipped', info.result)}"
            )
        return str(info.result["artifact"])

    def snapshots(self, cube: str | None = None) -> builtins.list[SnapshotInfo]:
        """The tenant's KV snapshots (one cube, or all)."""
        if cube is not None:
            self.stored(cube)
        home = self.core.config.home
        return [served(s, home) for s in self.mem.snapshots() if self._mine(s.cube, cube)]

    def remove_snapshot(self, snapshot_id: str) -> None:
        self._own_artifact(snapshot_id, UnknownSnapshotError, "snapshot")
        self.mem.remove_snapshot(snapshot_id)

    def adapters(self, cube: str | None = None) -> builtins.list[AdapterInfo]:
        """The tenant's adapters (one cube, or all)."""
        if cube is not None:
            self.stored(cube)
        home = self.core.config.home
        return [served(a, home) for a in self.mem.adapters() if self._mine(a.cube, cube)]

    def attach_adapter(self, adapter_id: str) -> AdapterInfo:
        """Mark the tenant's adapter attached (see ``ParametricTier.attach``)."""
        self._own_artifact(adapter_id, UnknownAdapterError, "adapter")
        return served(self.mem.attach_adapter(adapter_id), self.core.config.home)

    def detach_adapter(self, adapter_id: str) -> AdapterInfo:
        """Mark the tenant's adapter detached (see ``ParametricTier.detach``)."""
        self._own_artifact(adapter_id, UnknownAdapterError, "adapter")
        return served(self.mem.detach_adapter(adapter_id), self.core.config.home)

    def remove_adapter(self, adapter_id: str) -> None:
        self._own_artifact(adapter_id, UnknownAdapterError, "adapter")
        self.mem.remove_adapter(adapter_id)

    # -- jobs ---------------------------------------------------------------------------

    def jobs(
        self, statuses: Sequence[str] | None = None, limit: int = 200
    ) -> builtins.list[JobInfo]:
        """The tenant's recent jobs (those of its cubes), newest run first."""
        wanted = tuple(statuses) if statuses is not None else None
        return [public(job) for job in self.scheduler.jobs(wanted, limit, tenant=self.tenant)]

    def job(self, job_id: str) -> JobInfo:
        check_id(job_id, "job", UnknownJobError)
        found = jobs.rows(self.core.db, None, 1, tenant=self.tenant, job_id=job_id)
        if not found:
            raise UnknownJobError(f"no job with id {job_id!r}")
        return public(found[0][1])

    def plan(self, cube: str) -> dict[str, Any]:
        """What a scheduler run on the tenant's cube would do now (nothing written)."""
        plan = self.scheduler.plan(self.stored(cube)).to_dict()
        for step in plan["steps"]:
            step["cube"] = split_name(step["cube"])[1]
        return plan

    def enqueue_run(self, cube: str) -> tuple[str, builtins.list[str]]:
        """Plan the tenant's cube and queue the steps as jobs: (run id, job ids)."""
        return self.scheduler.enqueue(self.stored(cube))

    def apply_jobs(self, job_ids: builtins.list[str], wait_s: float = 60.0) -> None:
        """Apply queued jobs of the tenant (only its own; others are skipped)."""
        mine = {job.id for job in self.scheduler.jobs(None, None, tenant=self.tenant)}
        self.scheduler.apply([j for j in job_ids if j in mine], wait_s=wait_s)

    def _chosen(self, cube: str, item_ids: builtins.list[str]) -> tuple[str, ...]:
        """``item_ids`` checked to be items of the tenant's ``cube`` (else not found)."""
        ids = check_ids(item_ids, "memory item", UnknownItemError)
        with self.core.db.read() as session:
            found = store.ids_in_cube(session, ids, self.stored(cube))
        for item_id in ids:
            if item_id not in found:
                raise UnknownItemError(f"no memory item with id {item_id!r}")
        return tuple(dict.fromkeys(ids))

    def _queue(self, step: Step) -> tuple[str, builtins.list[str]]:
        return self.scheduler.enqueue_steps([step])

    def enqueue_snapshot(
        self,
        cube: str,
        *,
        items: builtins.list[str] | None = None,
        query: str | None = None,
        max_tokens: int = 1024,
        dtype: str = DEFAULT_SNAPSHOT_DTYPE,
    ) -> tuple[str, builtins.list[str]]:
        """Queue a snapshot build of the tenant's cube (the given items, the best for
        ``query``, or the newest, as ``Memos.build_snapshot`` chooses): (run id, job ids).

        The items are chosen now, so the job builds what the caller asked for.
        """
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 16:
            raise InvalidInputError(f"max_tokens={max_tokens}; allowed: >= 16")
        if items is not None:
            chosen = self._chosen(cube, items)
        else:
            records = self.tiers.snapshot_items(self.stored(cube), query, None)
            chosen = tuple(r.id for r in records)
        if not chosen:
            raise InvalidInputError(f"cube {cube!r} has no memories to snapshot")
        step = BuildSnapshot(self.stored(cube), REQUESTED, chosen, max_tokens, dtype)
        return self._queue(step)

    def enqueue_training(
        self,
        cube: str,
        *,
        items: builtins.list[str] | None = None,
        filter: FilterArg = None,
        config: TrainConfig | None = None,
    ) -> tuple[str, builtins.list[str]]:
        """Queue training an adapter of the tenant's cube (the given items, or those
        matching ``filter``, as ``Memos.consolidate`` chooses): (run id, job ids)."""
        stored = self.stored(cube)
        if items is not None:
            chosen = self._chosen(cube, items)
        else:
            chosen = tuple(r.id for r in self.tiers.training_items(stored, None, filter))
        if not chosen:
            raise InvalidInputError(f"cube {cube!r} has no memories to consolidate")
        step = TrainAdapter(stored, REQUESTED, chosen, config or TrainConfig())
        return self._queue(step)


def job_error(info: JobInfo) -> Exception:
    """The typed error a failed job recorded (``StoreError`` when it names none)."""
    from memos import errors

    name, _, message = str(info.error).partition(": ")
    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, errors.MemosError):
        return cls(message)
    return StoreError(f"job {info.id} failed: {info.error}")
