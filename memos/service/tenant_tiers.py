"""Jobs, artifacts and the language model in a tenant's view (part of
:class:`memos.service.tenancy.TenantMemos`, as ``ModelTiers`` is of ``Memos``).

The same rules as the rest of the view: cube names are the tenant's, a job or
artifact of another tenant is the same ``NotFoundError`` as a missing one, and
records come back naming cubes as the tenant sees them. Work a caller asks for
(a snapshot build, a training) is queued as a typed scheduler step, so it is a
job row any worker can follow or resume; its items are chosen when it is asked.
"""

from __future__ import annotations

import builtins
import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import select

from memos.activation.snapshot import DEFAULT_DTYPE
from memos.errors import (
    InvalidInputError,
    UnknownAdapterError,
    UnknownItemError,
    UnknownJobError,
    UnknownSnapshotError,
)
from memos.model_tiers import DEFAULT_CUBE
from memos.parametric.config import TrainConfig
from memos.plaintext.filters import SearchFilter
from memos.records import MemoryRecord, SearchHit
from memos.scheduler import jobs
from memos.scheduler.jobs import JobInfo
from memos.scheduler.steps import BuildSnapshot, TrainAdapter
from memos.store.cubes import split_name
from memos.store.models import Cube, Item

if TYPE_CHECKING:
    from memos.chat import Reply
    from memos.client import Memos

R = TypeVar("R")
Filter = SearchFilter | Mapping[str, Any] | None
#: The rule named on the jobs (and events) of work a caller asked for.
REQUESTED = "requested"


def public(value: R) -> R:
    """``value`` (a record with a ``cube`` field) naming its cube as its tenant sees it."""
    return dataclasses.replace(value, cube=split_name(value.cube)[1])  # type: ignore[type-var,attr-defined]


class TenantTiers:
    """The jobs, snapshots, adapters and chat of a tenant's view.

    The host class provides ``mem``, ``tenant``, ``stored``, ``_own_artifact``,
    ``search`` and ``list``.
    """

    mem: Memos
    tenant: str

    if TYPE_CHECKING:

        def stored(self, cube: str) -> str: ...
        def _own_artifact(self, artifact_id: str) -> bool: ...
        def search(self, query: str, *, cube: str = ..., k: int = ...) -> list[SearchHit]: ...
        def list(self, *, cube: str = ..., limit: int = ...) -> list[MemoryRecord]: ...

    # -- jobs and artifacts ----------------------------------------------------------

    def jobs(
        self, statuses: tuple[str, ...] | None = None, limit: int | None = 200
    ) -> builtins.list[JobInfo]:
        """The tenant's recent jobs (those of its cubes), newest run first."""
        found = self.mem.scheduler.jobs(statuses, limit, tenant=self.tenant)
        return [public(job) for job in found]

    def job(self, job_id: str) -> JobInfo:
        found = jobs.rows(self.mem.db, None, 1, tenant=self.tenant, job_id=job_id)
        if not found:
            raise UnknownJobError(f"no job with id {job_id!r}")
        return public(found[0][1])

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
        return [public(s) for s in self.mem.activation.snapshots() if self._mine(s.cube, cube)]

    def remove_snapshot(self, snapshot_id: str) -> None:
        if not self._own_artifact(snapshot_id):
            raise UnknownSnapshotError(f"no snapshot with id {snapshot_id!r}")
        self.mem.activation.remove(snapshot_id)

    def adapters(self, cube: str | None = None) -> builtins.list[Any]:
        """The tenant's adapters (one cube, or all)."""
        return [public(a) for a in self.mem.parametric.adapters() if self._mine(a.cube, cube)]

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
        dtype: str = DEFAULT_DTYPE,
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
        return public(self.mem.parametric.attach(adapter_id))

    def detach_adapter(self, adapter_id: str) -> Any:
        """Mark the tenant's adapter detached (see ``ParametricTier.detach``)."""
        if not self._own_artifact(adapter_id):
            raise UnknownAdapterError(f"no adapter with id {adapter_id!r}")
        return public(self.mem.parametric.detach(adapter_id))
