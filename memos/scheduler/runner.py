"""Applying the scheduler's plan as logged, idempotent, resumable jobs.

A run takes the scheduler lock (one run at a time per store), first finishes
any job an earlier run left ``planned`` or ``running`` (a run killed midway),
then plans (:mod:`memos.scheduler.planner`), writes every step as a ``planned`` job row,
and applies them in order: ``running``, then ``done`` with its result, or
``failed`` with the error (the other jobs still run).

Re-applying a job is harmless. A job that builds an artifact names it after
itself (a UUID derived from the job id), so a retry after a crash either finds
it registered or rewrites the same file; decay moves only items still in the
state they were planned from; removing what is already gone is a no-op. Every
migration is an event naming its tiers and the rule (``scheduler: <rule>``).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from filelock import FileLock, Timeout
from sqlalchemy import select, text

from memos import store
from memos.errors import MemosError
from memos.lifecycle import decay as lifecycle
from memos.parametric.training import TrainConfig
from memos.records import SEARCHABLE_STATES, MemoryRecord
from memos.scheduler.planner import Plan, PlannedStep, build_plan
from memos.store import artifacts
from memos.store.models import Cube, Item, Job

if TYPE_CHECKING:
    from memos.client import Memos

log = logging.getLogger(__name__)
_JOB_NAMESPACE = uuid.UUID("5b0c4f3e-6d1a-4c8e-9a57-0f2d1e3c4b5a")
_PG_LOCK_KEY = 0x6D656D6F7353  # "memosS"
UNFINISHED = ("planned", "running")


class SchedulerBusyError(MemosError):
    """Another scheduler run holds the lock."""


@dataclass(frozen=True)
class JobInfo:
    """One job as reported to callers."""

    id: str
    run_id: str
    seq: int
    cube: str | None
    kind: str
    rule: str
    status: str
    attempts: int
    result: dict[str, Any]
    error: str | None
    created_at: datetime
    finished_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        data["finished_at"] = self.finished_at.isoformat() if self.finished_at else None
        return data


@dataclass
class RunReport:
    """What one scheduler run did."""

    run_id: str
    resumed: list[JobInfo] = field(default_factory=list)
    jobs: list[JobInfo] = field(default_factory=list)

    @property
    def failed(self) -> list[JobInfo]:
        return [j for j in [*self.resumed, *self.jobs] if j.status == "failed"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "resumed": [j.to_dict() for j in self.resumed],
            "jobs": [j.to_dict() for j in self.jobs],
            "failed": len(self.failed),
        }


Progress = Callable[[JobInfo], None]


class Scheduler:
    """Plans and applies tier migrations for one memos store."""

    def __init__(self, memos: Memos) -> None:
        self.memos = memos

    def plan(self, cube: str | None = None, now: datetime | None = None) -> Plan:
        """What a run would do now (nothing is written)."""
        self.memos.recalls.flush()
        if cube is not None:
            self.memos._cube(cube)  # unknown cubes are an error, not an empty plan
        cfg = self.memos.config
        return build_plan(
            self.memos.db, cfg.retention, cfg.scheduler, now or self.memos.clock.now(), cube
        )

    def unfinished(self) -> list[JobInfo]:
        """Jobs an earlier run left planned or running, in the order they were planned."""
        return [info for _, info in self._rows(UNFINISHED, limit=None)]

    def jobs(self, statuses: tuple[str, ...] | None = None, limit: int = 200) -> list[JobInfo]:
        """Recent jobs, newest run first, in order within a run."""
        rows = self._rows(statuses, limit)
        newest = {info.run_id: pk for pk, info in rows}  # rows ascend: the last pk wins
        return [info for pk, info in sorted(rows, key=lambda r: (-newest[r[1].run_id], r[0]))]

    def _rows(
        self, statuses: tuple[str, ...] | None, limit: int | None
    ) -> list[tuple[int, JobInfo]]:
        """The newest ``limit`` jobs as (pk, info), oldest first (a run's jobs have
        consecutive pks in step order)."""
        with self.memos.db.read() as session:
            stmt = select(Job, Cube.name).outerjoin(Cube, Cube.pk == Job.cube_pk)
            if statuses is not None:
                stmt = stmt.where(Job.status.in_(statuses))
            rows = list(session.execute(stmt.order_by(Job.pk.desc()).limit(limit)))
        return [(job.pk, _info(job, name)) for job, name in reversed(rows)]

    def run(
        self, cube: str | None = None, progress: Progress | None = None, wait_s: float = 0.0
    ) -> RunReport:
        """Finish unfinished jobs, then plan and apply (see module docs).

        Raises ``SchedulerBusyError`` when another run holds the lock for
        longer than ``wait_s`` seconds.
        """
        with self._lock(wait_s):
            report = RunReport(run_id=str(uuid.uuid4()))
            for job in self.unfinished():
                report.resumed.append(self._execute(job.id, progress))
            plan = self.plan(cube)
            for job_id in self._enqueue(report.run_id, plan):
                report.jobs.append(self._execute(job_id, progress))
            return report

    # -- jobs ------------------------------------------------------------------

    def _enqueue(self, run_id: str, plan: Plan) -> list[str]:
        if not plan.steps:
            return []
        ids = [str(uuid.uuid4()) for _ in plan.steps]
        now = self.memos.clock.now()

        def work(session: Any) -> None:
            pks = dict(session.execute(select(Cube.name, Cube.pk)).all())
            session.add_all(
                Job(
                    id=job_id,
                    run_id=run_id,
                    seq=seq,
                    cube_pk=pks.get(step.cube),
                    kind=step.kind,
                    rule=step.rule,
                    status="planned",
                    payload={"cube": step.cube, **step.payload},
                    result={},
                    attempts=0,
                    created_at=now,
                )
                for seq, (job_id, step) in enumerate(zip(ids, plan.steps, strict=True))
            )

        self.memos.db.write(work)
        return ids

    def _execute(self, job_id: str, progress: Progress | None) -> JobInfo:
        step = self._start(job_id)
        try:
            result = _APPLY[step.kind](self, job_id, step)
        except Exception as exc:
            log.exception("scheduler job %s (%s) failed", job_id, step.kind)
            info = self._finish(job_id, "failed", {}, f"{type(exc).__name__}: {exc}")
        else:
            info = self._finish(job_id, "done", result, None)
        if progress is not None:
            progress(info)
        return info

    def _start(self, job_id: str) -> PlannedStep:
        now = self.memos.clock.now()

        def work(session: Any) -> PlannedStep:
            job = session.scalar(select(Job).where(Job.id == job_id))
            job.status, job.started_at = "running", now
            job.attempts += 1
            payload = dict(job.payload)
            return PlannedStep(job.kind, payload.pop("cube"), job.rule, payload)

        return self.memos.db.write(work)

    def _finish(
        self, job_id: str, status: str, result: dict[str, Any], error: str | None
    ) -> JobInfo:
        now = self.memos.clock.now()

        def work(session: Any) -> JobInfo:
            job = session.scalar(select(Job).where(Job.id == job_id))
            job.status, job.result, job.error, job.finished_at = status, result, error, now
            name = session.scalar(select(Cube.name).where(Cube.pk == job.cube_pk))
            session.flush()
            return _info(job, name)

        return self.memos.db.write(work)

    @contextmanager
    def _lock(self, wait_s: float) -> Iterator[None]:
        path = self.memos.config.home / "scheduler.lock"
        try:
            with FileLock(str(path), timeout=wait_s), self._pg_lock():
                yield
        except Timeout:
            raise SchedulerBusyError(
                f"another scheduler run holds {path}; try again when it finishes"
            ) from None

    @contextmanager
    def _pg_lock(self) -> Iterator[None]:
        db = self.memos.db
        if db.dialect != "postgresql":
            yield
            return
        with db.engine.connect() as conn:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
            if not got.scalar():
                raise SchedulerBusyError("another scheduler run holds the database lock")
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
                conn.commit()

    # -- applying steps ----------------------------------------------------------

    def _records(self, item_ids: list[str]) -> list[MemoryRecord]:
        """The current versions of the items still searchable, in the given order."""
        with self.memos.db.read() as session:
            rows = session.execute(
                select(Item, Cube.name)
                .join(Cube, Cube.pk == Item.cube_pk)
                .where(Item.id.in_(item_ids), Item.state.in_(SEARCHABLE_STATES))
            ).all()
            found = {item.id: store.to_record(item, name) for item, name in rows}
        return [found[i] for i in item_ids if i in found]

    def _decay(self, _job_id: str, step: PlannedStep) -> dict[str, Any]:
        changes = [lifecycle.StateChange(**c) for c in step.payload["changes"]]
        at = datetime.fromisoformat(step.payload["now"])
        moved = lifecycle.apply_decay(self.memos.db, changes, at, _reason(step))
        return {"moved": moved, "planned": len(changes)}

    def _evict(self, _job_id: str, step: PlannedStep) -> dict[str, Any]:
        from memos.activation.tier import UnknownSnapshotError

        try:
            self.memos.activation.remove(step.payload["artifact"], reason=_reason(step))
        except UnknownSnapshotError:
            return {"removed": False}
        return {"removed": True}

    def _retire(self, _job_id: str, step: PlannedStep) -> dict[str, Any]:
        from memos.parametric.tier import UnknownAdapterError

        try:
            self.memos.parametric.remove(step.payload["artifact"], reason=_reason(step))
        except UnknownAdapterError:
            return {"removed": False}
        return {"removed": True}

    def _promote(self, job_id: str, step: PlannedStep) -> dict[str, Any]:
        artifact_id = _artifact_id(job_id)
        if not artifacts.exists(self.memos.db, artifact_id):
            records = self._records(step.payload["items"])
            if not records:
                return {"skipped": "no hot item is left"}
            self.memos.activation.build(
                step.cube,
                items=records,
                max_tokens=int(step.payload["max_tokens"]),
                dtype=str(step.payload["dtype"]),
                artifact_id=artifact_id,
                reason=_reason(step),
                meta={"hot_set": step.payload["hot_set"], "job": job_id},
            )
        superseded = [
            s.id
            for s in self.memos.activation.snapshots(step.cube)
            if s.id != artifact_id and s.scheduled
        ]
        for snapshot_id in superseded:
            self.memos.activation.remove(snapshot_id, reason="scheduler: superseded")
        return {"artifact": artifact_id, "superseded": superseded}

    def _consolidate(self, job_id: str, step: PlannedStep) -> dict[str, Any]:
        adapter_id = _artifact_id(job_id)
        if not artifacts.exists(self.memos.db, adapter_id):
            records = self._records(step.payload["items"])
            if not records:
                return {"skipped": "no item is left"}
            self.memos.parametric.consolidate(
                step.cube,
                items=records,
                config=TrainConfig(**self.memos.config.scheduler.train),
                adapter_id=adapter_id,
                reason=_reason(step),
            )
        attach = step.payload.get("attached", self.memos.config.scheduler.attach_adapters)
        if attach:
            self.memos.parametric.attach(adapter_id)
        return {"artifact": adapter_id, "attached": bool(attach)}

    def _rebuild(self, job_id: str, step: PlannedStep) -> dict[str, Any]:
        result = self._consolidate(job_id, step)
        if "skipped" in result:
            result.update(self._retire(job_id, step))
            return result
        result["retired"] = self._retire(job_id, step)["removed"]
        return result


_APPLY: dict[str, Callable[[Scheduler, str, PlannedStep], dict[str, Any]]] = {
    "decay": Scheduler._decay,
    "evict_snapshot": Scheduler._evict,
    "retire_adapter": Scheduler._retire,
    "rebuild_adapter": Scheduler._rebuild,
    "promote_snapshot": Scheduler._promote,
    "consolidate": Scheduler._consolidate,
}


def _artifact_id(job_id: str) -> str:
    return str(uuid.uuid5(_JOB_NAMESPACE, job_id))


def _reason(step: PlannedStep) -> str:
    return f"scheduler: {step.rule}"[:200]


def _info(job: Job, cube: str | None) -> JobInfo:
    return JobInfo(
        id=job.id,
        run_id=job.run_id,
        seq=job.seq,
        cube=cube,
        kind=job.kind,
        rule=job.rule,
        status=job.status,
        attempts=job.attempts,
        result=dict(job.result or {}),
        error=job.error,
        created_at=job.created_at,
        finished_at=job.finished_at,
    )


class BackgroundScheduler:
    """Runs the scheduler every ``interval_s`` seconds in a daemon thread.

    ``stop()`` (or leaving the ``with`` block) lets a run in progress finish,
    then returns; a tick that finds another run holding the lock is skipped.
    """

    def __init__(self, memos: Memos, interval_s: float, cube: str | None = None) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s={interval_s}; allowed: > 0")
        self.memos, self.interval_s, self.cube = memos, interval_s, cube
        self.runs = 0
        self.last_report: RunReport | None = None
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="memos-scheduler", daemon=True)

    def start(self) -> BackgroundScheduler:
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Ask the thread to stop and wait for it (a run in progress finishes)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> BackgroundScheduler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.last_report = self.memos.scheduler.run(self.cube)
                self.last_error = None
            except SchedulerBusyError as exc:
                self.last_error = str(exc)
            except Exception as exc:  # keep the agent alive; report and retry next tick
                log.exception("background scheduler run failed")
                self.last_error = f"{type(exc).__name__}: {exc}"
            self.runs += 1
            self._stop.wait(self.interval_s)
