"""Job rows: each planned step is written as a job before it is applied.

A job goes ``planned`` → ``running`` → ``done`` (with its result) or
``failed`` (with the error). Jobs a killed run left ``planned`` or
``running`` are :data:`UNFINISHED`; the next run applies them first. The job
row (:mod:`memos.store.jobs`) holds its step's typed payload
(:mod:`memos.scheduler.steps`), so any process can resume it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from memos.records import JobInfo
from memos.scheduler.steps import Step, step_from_job
from memos.store import jobs as store_jobs
from memos.store.db import Database

UNFINISHED = ("planned", "running")
JOB_STATUSES = ("planned", "running", "done", "failed")


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
    new = [
        store_jobs.NewJob(str(uuid.uuid4()), step.cube, step.kind, step.rule, step.payload())
        for step in steps
    ]
    store_jobs.insert_jobs(db, run_id, new, now)
    return [job.id for job in new]


def start(db: Database, job_id: str, now: datetime) -> Step:
    """Mark a job running (one more attempt) and return its step."""
    started = store_jobs.start_job(db, job_id, now)
    return step_from_job(started.kind, started.cube, started.rule, started.payload)


#: Record a job's outcome and return it.
finish = store_jobs.finish_job
#: The newest jobs (of one tenant's cubes; with one id) as (pk, info), oldest first.
rows = store_jobs.job_rows
