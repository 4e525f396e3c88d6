"""Job rows: a planned step is written as a job before it is applied.

A job goes ``planned`` → ``running`` → ``done`` (with its result) or
``failed`` (with the error). The row holds its step's kind, rule and payload,
so any process can resume it (:mod:`memos.scheduler.jobs` turns them back
into typed steps).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from memos.records import JobInfo
from memos.store.db import Database
from memos.store.models import Cube, Job


@dataclass(frozen=True)
class NewJob:
    """A step about to be written as a planned job."""

    id: str
    cube: str
    kind: str
    rule: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class StartedJob:
    """A job just marked running: what its step is made from."""

    kind: str
    cube: str
    rule: str
    payload: dict[str, Any]


def insert_jobs(db: Database, run_id: str, new: Sequence[NewJob], now: datetime) -> None:
    """Write ``new`` as planned jobs of run ``run_id``, in order (one transaction)."""

    def work(session: Session) -> None:
        pks = dict(session.execute(select(Cube.name, Cube.pk)).all())
        session.add_all(
            Job(
                id=job.id,
                run_id=run_id,
                seq=seq,
                cube_pk=pks.get(job.cube),
                kind=job.kind,
                rule=job.rule,
                status="planned",
                payload={"cube": job.cube, **job.payload},
                result={},
                attempts=0,
                created_at=now,
            )
            for seq, job in enumerate(new)
        )

    db.write(work)


def start_job(db: Database, job_id: str, now: datetime) -> StartedJob:
    """Mark a job running (one more attempt) and return what its step is made from."""

    def work(session: Session) -> StartedJob:
        job = _job(session, job_id)
        job.status, job.started_at = "running", now
        job.attempts += 1
        payload = dict(job.payload)
        return StartedJob(job.kind, payload.pop("cube"), job.rule, payload)

    return db.write(work)


def job_step(db: Database, job_id: str) -> StartedJob:
    """What a job's step is made from, as it stands (nothing changes)."""
    with db.read() as session:
        job = _job(session, job_id)
        payload = dict(job.payload)
        return StartedJob(job.kind, payload.pop("cube"), job.rule, payload)


def note_job(db: Database, job_id: str, **details: Any) -> None:
    """Merge ``details`` into a running job's result (where it runs, say)."""

    def work(session: Session) -> None:
        job = _job(session, job_id)
        job.result = {**(job.result or {}), **details}

    db.write(work)


def finish_job(
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
        noted = {k: v for k, v in (job.result or {}).items() if k.startswith("ray_")}
        job.status, job.result, job.error = status, {**noted, **result}, error
        job.finished_at = now
        name = session.scalar(select(Cube.name).where(Cube.pk == job.cube_pk))
        session.flush()
        return _info(job, name)

    return db.write(work)


def job_rows(
    db: Database,
    statuses: Sequence[str] | None,
    limit: int | None,
    tenant: str | None = None,
    job_id: str | None = None,
) -> list[tuple[int, JobInfo]]:
    """The newest ``limit`` jobs (of one tenant's cubes; with one id) as (pk, info),
    oldest first (a run's jobs have consecutive pks in step order)."""
    with db.read() as session:
        stmt = select(Job, Cube.name).outerjoin(Cube, Cube.pk == Job.cube_pk)
        if statuses is not None:
            stmt = stmt.where(Job.status.in_(list(statuses)))
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
