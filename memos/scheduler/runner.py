"""Applying the scheduler's plan as logged, idempotent, resumable jobs.

A run takes the scheduler lock (one run at a time per store), first finishes
any job an earlier run left ``planned`` or ``running`` (a run killed midway),
then plans (:mod:`memos.scheduler.planner`), writes every step as a
``planned`` job row (:mod:`memos.scheduler.jobs`), and applies them in order:
``running``, then ``done`` with its result, or ``failed`` with the error (the
other jobs still run).

Re-applying a job is harmless. A job that builds an artifact names it after
itself (a UUID derived from the job id), so a retry after a crash either finds
it registered or rewrites the same file; decay moves only items still in the
state they were planned from; removing what is already gone is a no-op. Every
migration is an event naming its tiers and the rule (``scheduler: <rule>``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from filelock import FileLock, Timeout

from memos import store
from memos.errors import (
    InvalidInputError,
    SchedulerBusyError,
    UnknownAdapterError,
    UnknownSnapshotError,
)
from memos.lifecycle.decay import apply_decay
from memos.parametric.config import TrainConfig
from memos.records import JobInfo, MemoryRecord
from memos.scheduler import jobs
from memos.scheduler.jobs import UNFINISHED, RunReport
from memos.scheduler.planner import Plan, build_plan
from memos.scheduler.steps import (
    BuildSnapshot,
    Consolidate,
    DecayStep,
    EvictSnapshot,
    PromoteSnapshot,
    RebuildAdapter,
    RetireAdapter,
    Step,
    TrainAdapter,
)
from memos.store import artifacts

if TYPE_CHECKING:
    from memos.activation.tier import ActivationTier
    from memos.core import Core
    from memos.parametric.tier import ParametricTier

log = logging.getLogger(__name__)
_JOB_NAMESPACE = uuid.UUID("5b0c4f3e-6d1a-4c8e-9a57-0f2d1e3c4b5a")
_PG_LOCK_KEY = 0x6D656D6F7353  # "memosS"

Progress = Callable[[JobInfo], None]


class Scheduler:
    """Plans and applies tier migrations for one store.

    Args:
        core: the store's shared services.
        activation: the activation tier, built on first use by the callable
            (snapshot steps need it; a decay-only run never loads it).
        parametric: the parametric tier, likewise.
    """

    def __init__(
        self,
        core: Core,
        activation: Callable[[], ActivationTier],
        parametric: Callable[[], ParametricTier],
        model_jobs: Callable[[str, Step], dict[str, Any]] | None = None,
    ) -> None:
        self.core = core
        self._activation = activation
        self._parametric = parametric
        self.model_jobs = model_jobs

    def plan(self, cube: str | None = None, now: datetime | None = None) -> Plan:
        """What a run would do now (nothing is written)."""
        self.core.recalls.flush()
        if cube is not None:
            self.core.cube(cube)  # unknown cubes are an error, not an empty plan
        cfg = self.core.config
        return build_plan(
            self.core.db, cfg.retention, cfg.scheduler, now or self.core.clock.now(), cube
        )

    def unfinished(self) -> list[JobInfo]:
        """Jobs an earlier run left planned or running, in the order they were planned."""
        return [info for _, info in jobs.rows(self.core.db, UNFINISHED, limit=None)]

    def jobs(
        self,
        statuses: tuple[str, ...] | None = None,
        limit: int | None = 200,
        tenant: str | None = None,
    ) -> list[JobInfo]:
        """Recent jobs (of one tenant's cubes), newest run first, in order within a run.

        ``statuses`` must be among :data:`memos.scheduler.jobs.JOB_STATUSES`.
        """
        bad = sorted(set(statuses or ()) - set(jobs.JOB_STATUSES))
        if bad:
            raise InvalidInputError(
                f"unknown job status {', '.join(map(repr, bad))}; "
                f"allowed: {', '.join(jobs.JOB_STATUSES)}"
            )
        rows = jobs.rows(self.core.db, statuses, limit, tenant)
        newest = {info.run_id: pk for pk, info in rows}  # rows ascend: the last pk wins
        return [info for pk, info in sorted(rows, key=lambda r: (-newest[r[1].run_id], r[0]))]

    def run(
        self, cube: str | None = None, progress: Progress | None = None, wait_s: float = 0.0
    ) -> RunReport:
        """Finish unfinished jobs, then plan and apply (see module docs).

        Raises ``SchedulerBusyError`` when another run holds the lock for
        longer than ``wait_s`` seconds.
        """
        with self.lock(wait_s):
            report = RunReport(run_id=str(uuid.uuid4()))
            for job in self.unfinished():
                report.resumed.append(self._execute(job.id, progress))
            plan = self.plan(cube)
            now = self.core.clock.now()
            for job_id in jobs.enqueue(self.core.db, report.run_id, plan.steps, now):
                report.jobs.append(self._execute(job_id, progress))
            return report

    def enqueue(self, cube: str) -> tuple[str, list[str]]:
        """Plan ``cube`` now and write its steps as planned jobs, applying none:
        (run id, job ids). :meth:`apply` (or any later run) applies them."""
        plan = self.plan(cube)
        run_id = str(uuid.uuid4())
        return run_id, jobs.enqueue(self.core.db, run_id, plan.steps, self.core.clock.now())

    def enqueue_steps(self, steps: list[Step]) -> tuple[str, list[str]]:
        """Write steps a caller asked for (not planned) as one run's planned jobs:
        (run id, job ids). :meth:`apply` (or any later run) applies them."""
        run_id = str(uuid.uuid4())
        return run_id, jobs.enqueue(self.core.db, run_id, steps, self.core.clock.now())

    def apply(
        self, job_ids: list[str], progress: Progress | None = None, wait_s: float = 0.0
    ) -> list[JobInfo]:
        """Apply these jobs in order under the lock, skipping any another run finished."""
        with self.lock(wait_s):
            pending = {info.id for info in self.unfinished()}
            return [self._execute(job_id, progress) for job_id in job_ids if job_id in pending]

    @contextmanager
    def lock(self, wait_s: float = 0.0) -> Iterator[None]:
        """Hold the store's scheduler lock (``SchedulerBusyError`` after ``wait_s``)."""
        path = self.core.config.home / "scheduler.lock"
        try:
            with FileLock(str(path), timeout=wait_s), self._pg_lock():
                yield
        except Timeout:
            raise SchedulerBusyError(
                f"another scheduler run holds {path}; try again when it finishes"
            ) from None

    @contextmanager
    def _pg_lock(self) -> Iterator[None]:
        with self.core.db.advisory_lock(_PG_LOCK_KEY) as got:
            if not got:
                raise SchedulerBusyError("another scheduler run holds the database lock")
            yield

    def _execute(self, job_id: str, progress: Progress | None) -> JobInfo:
        db, clock = self.core.db, self.core.clock
        step = jobs.start(db, job_id, clock.now())
        try:
            result = self._apply(job_id, step)
        except JobInterrupted as exc:  # left running: the next run resumes it
            log.warning("scheduler job %s (%s) was interrupted: %s", job_id, step.kind, exc)
            return jobs.rows(db, None, 1, job_id=job_id)[0][1]
        except Exception as exc:  # a failed job is recorded; the other jobs still run
            log.exception("scheduler job %s (%s) failed", job_id, step.kind)
            error = f"{type(exc).__name__}: {exc}"
            info = jobs.finish(db, job_id, "failed", {}, error, clock.now())
        else:
            info = jobs.finish(db, job_id, "done", result, None, clock.now())
        if progress is not None:
            progress(info)
        return info

    # -- applying steps ----------------------------------------------------------

    def _apply(self, job_id: str, step: Step) -> dict[str, Any]:
        if self.model_jobs is not None and isinstance(step, MODEL_STEPS):
            return self.model_jobs(job_id, step)
        return self.apply_here(job_id, step)

    def apply_here(self, job_id: str, step: Step) -> dict[str, Any]:
        """Apply one job's step in this process (a Ray worker calls it for the model
        steps it is sent; see :mod:`memos.model_jobs`)."""
        match step:
            case DecayStep():
                moved = apply_decay(self.core.db, step.changes, step.now, _reason(step))
                return {"moved": moved, "planned": len(step.changes)}
            case EvictSnapshot():
                return self._evict(step.artifact, _reason(step))
            case RetireAdapter():
                return self._retire(step.artifact, _reason(step))
            case PromoteSnapshot():
                return self._promote(job_id, step)
            case RebuildAdapter():
                result = self._consolidate(job_id, step, step.items, step.attached)
                retired = self._retire(step.artifact, _reason(step))
                if "skipped" in result:
                    return {**result, **retired}
                return {**result, "retired": retired["removed"]}
            case Consolidate():
                attach = self.core.config.scheduler.attach_adapters
                return self._consolidate(job_id, step, step.items, attach)
            case BuildSnapshot():
                return self._build(job_id, step, {})
            case TrainAdapter():
                return self._consolidate(job_id, step, step.items, False, step.config)
        raise TypeError(f"no rule applies a {type(step).__name__}")

    def _records(self, item_ids: tuple[str, ...]) -> list[MemoryRecord]:
        """The current versions of the items still searchable, in the given order."""
        with self.core.db.read() as session:
            return store.searchable_records(session, item_ids)

    def _evict(self, snapshot_id: str, reason: str) -> dict[str, Any]:
        try:
            self._activation().remove(snapshot_id, reason=reason)
        except UnknownSnapshotError:
            return {"removed": False}
        return {"removed": True}

    def _retire(self, adapter_id: str, reason: str) -> dict[str, Any]:
        try:
            self._parametric().remove(adapter_id, reason=reason)
        except UnknownAdapterError:
            return {"removed": False}
        return {"removed": True}

    def _promote(self, job_id: str, step: PromoteSnapshot) -> dict[str, Any]:
        built = self._build(job_id, step, {"hot_set": list(step.hot_set)})
        if "skipped" in built:
            return {"skipped": "no hot item is left"}
        activation, artifact_id = self._activation(), built["artifact"]
        superseded = [
            s.id for s in activation.snapshots(step.cube) if s.id != artifact_id and s.scheduled
        ]
        for snapshot_id in superseded:
            activation.remove(snapshot_id, reason="scheduler: superseded")
        return {"artifact": artifact_id, "superseded": superseded}

    def _build(
        self, job_id: str, step: PromoteSnapshot | BuildSnapshot, meta: dict[str, Any]
    ) -> dict[str, Any]:
        """Snapshot the step's items still searchable, once per job."""
        artifact_id = _artifact_id(job_id)
        if not artifacts.exists(self.core.db, artifact_id):
            records = self._records(step.items)
            if not records:
                return {"skipped": "no item is left"}
            self._activation().build(
                step.cube,
                records,
                max_tokens=step.max_tokens,
                dtype=step.dtype,
                artifact_id=artifact_id,
                reason=_reason(step),
                meta={**meta, "job": job_id},
            )
        return {"artifact": artifact_id}

    def _consolidate(
        self,
        job_id: str,
        step: Step,
        item_ids: tuple[str, ...],
        attach: bool,
        config: TrainConfig | None = None,
    ) -> dict[str, Any]:
        parametric = self._parametric()
        adapter_id = _artifact_id(job_id)
        if not artifacts.exists(self.core.db, adapter_id):
            records = self._records(item_ids)
            if not records:
                return {"skipped": "no item is left"}
            parametric.consolidate(
                step.cube,
                records,
                config=config or TrainConfig(**self.core.config.scheduler.train),
                adapter_id=adapter_id,
                reason=_reason(step),
            )
        if attach:
            parametric.attach(adapter_id)
        return {"artifact": adapter_id, "attached": bool(attach)}


#: The steps that run the language model: where ``MemosConfig.jobs`` says.
MODEL_STEPS = (BuildSnapshot, PromoteSnapshot, TrainAdapter, Consolidate, RebuildAdapter)


class JobInterrupted(Exception):
    """The process running a job went away mid-job: leave the job to be resumed."""


def _artifact_id(job_id: str) -> str:
    return str(uuid.uuid5(_JOB_NAMESPACE, job_id))


def _reason(step: Step) -> str:
    return f"scheduler: {step.rule}"[:200]
