"""Job rows: each planned step is written as a job before it is applied.

A job goes ``planned`` → ``running`` → ``done`` (with its result) or
``failed`` (with the error). Jobs a killed run left ``planned`` or
``running`` are :data:`UNFINISHED`; the next run applies them first. The job
row holds its step's typed payload (:mod:`memos.scheduler.steps`), so any
process can resume it.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from memos.scheduler.steps import Step, step_from_job
from memos.store.db import Database
from memos.store.models import Cube, Job

UNFINISHED = ("planned", "running")
JOB_STATUSES = ("planned", "running", "done", "failed")


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


def enqueue(db: Database, run_id: str, steps: list[Step], now: datetime) -> list[str]:
    """Write ``steps`` as planned jobs of run ``run_id``; returns their ids in order."""
    if not steps:
        return []
    ids = [str(uuid.uuid4()) for _ in steps]

    def work(session: Session) -> None:
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
                payload={"cube": step.cube, **step.payload()},
                result={},
                attempts=0,
                created_at=now,
            )
            for seq, (job_id, step) in enumerate(zip(ids, steps, strict=True))
        )

    db.write(work)
    return ids


def start(db: Database, job_id: str, now: datetime) -> Step:
    """Mark a job running (one more attempt) and return its step."""

    def work(session: Session) -> Step:
        job = _job(session, job_id)
        job.status, job.started_at = "running", now
        job.attempts += 1
        payload = dict(job.payload)
        return step_from_job(job.kind, payload.pop("cube"), job.rule, payload)

    return db.write(work)


def finish(
    db: Database,
    job_id: str,
    status: str,
    result: dict[str, Any],
    error: str | None,
    now: datetime,
) -> JobInfo:
    """Record a job's outcome and return it."""

    def work(session: Session) -> JobInfo:
        job = _job(session, job_id)
        job.status, job.result, job.error, job.finished_at = status, result, error, now
        name = session.scalar(select(Cube.name).where(Cube.pk == job.cube_pk))
        session.flush()
        return _info(job, name)

    return db.write(work)


def rows(
    db: Database,
    statuses: tuple[str, ...] | None,
    limit: int | None,
    tenant: str | None = None,
    job_id: str | None = None,
) -> list[tuple[int, JobInfo]]:
    """The newest ``limit`` jobs (of one tenant's cubes; with one id) as (pk, info),
    oldest first (a run's jobs have consecutive pks in step order)."""
    with db.read() as session:
        stmt = select(Job, Cube.name).outerjoin(Cube, Cube.pk == Job.cube_pk)
        if statuses is not None:
            stmt = stmt.where(Job.status.in_(statuses))
        if tenant is not None:
            stmt = stmt.where(Cube.tenant == tenant)
        if job_id is not None:
            stmt = stmt.where(Job.id == job_id)
        found = list(session.execute(stmt.order_by(Job.pk.desc()).limit(limit)))
    return [(job.pk, _info(job, name)) for job, name in reversed(found)]


def _job(session: Session, job_id: str) -> Job:
    job = session.scalar(select(Job).where(Job.id == job_id))
    assert job is not None, f"job {job_id} vanished while it ran"
    return job


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
