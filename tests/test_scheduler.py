"""The tier scheduler: plans, jobs, idempotent runs, crash and resume, background mode."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import pytest
from helpers import HashingEmbedder
from sqlalchemy import select

from memos import Memos
from memos.clock import ManualClock
from memos.config import MemosConfig, SchedulerPolicy
from memos.errors import SchedulerBusyError
from memos.lm import LanguageModel
from memos.store.models import Event, Job

DAY = timedelta(days=1)
FACTS = [
    "Zorbil's favourite colour is amberine.",
    "Quenta Vash's home town is Torvak.",
    "The office alarm code is 7731.",
    "Mira's cat is called Pebble.",
    "The boat is moored at pier nine.",
    "The spare tyre is in the garage loft.",
]
# no locality term or gate (their reference passes cost more than two steps): the plumbing
# is tested here
QUICK_TRAIN = {
    "rank": 2,
    "steps": 2,
    "layers": (10,),
    "backend": "reference",
    "locality_weight": 0.0,
    "gate": False,
}


def open_mem(home: Path, lm: LanguageModel | None = None, **policy: object) -> Memos:
    config = MemosConfig(home=home, scheduler=SchedulerPolicy(**policy))  # type: ignore[arg-type]
    return Memos(config, embedder=HashingEmbedder(), clock=ManualClock(), lm=lm)


def tick(mem: Memos, days: float) -> None:
    clock = mem.clock
    assert isinstance(clock, ManualClock)
    clock.advance(days * DAY)


def recall(mem: Memos, ids: list[str], times: int) -> None:
    for _ in range(times):
        tick(mem, 0.5)
        mem.mark_used(ids)


def test_decay_and_eviction_plan_then_nothing_left_to_do(tmp_path: Path) -> None:
    mem = open_mem(tmp_path)
    old = mem.add("the shed key is on the hook")
    tick(mem, 12)
    mem.add("the gate code is 1234")
    plan = mem.scheduler.plan()
    assert [s.kind for s in plan.steps] == ["decay"]
    (change,) = plan.steps[0].changes
    assert (change.item_id, change.old, change.new) == (old.id, "active", "cold")
    assert plan.steps[0].summary() == "1 active→cold"
    assert mem.get(old.id).state == "active"  # planning writes nothing

    report = mem.scheduler.run()
    assert [(j.kind, j.status) for j in report.jobs] == [("decay", "done")]
    assert report.jobs[0].result == {"moved": 1, "planned": 1}
    assert mem.get(old.id).state == "cold"
    assert mem.scheduler.plan().steps == []
    assert mem.scheduler.run().jobs == []
    with mem.db.read() as session:
        (event,) = session.scalars(
            select(Event).where(Event.item_id == old.id, Event.kind == "state")
        )
    assert event.reason == "scheduler: retention below thresholds"
    mem.close()


def test_a_second_run_waits_for_the_lock(tmp_path: Path) -> None:
    mem = open_mem(tmp_path)
    with mem.scheduler.lock(0), pytest.raises(SchedulerBusyError, match="another scheduler"):
        mem.scheduler.run()
    mem.close()


def test_background_scheduler_runs_and_stops_cleanly(tmp_path: Path) -> None:
    mem = open_mem(tmp_path)
    item = mem.add("the recycling goes out on monday")
    tick(mem, 12)
    background = mem.start_scheduler(every_minutes=0.001)
    deadline = time.monotonic() + 30
    while background.runs < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert background.runs >= 2 and background.last_error is None
    assert mem.get(item.id).state == "cold"
    mem.close()  # stops the thread
    assert not background.running


def test_promoted_snapshot_is_used_by_the_next_chat(tmp_path: Path, lm: LanguageModel) -> None:
    mem = open_mem(tmp_path, lm)
    items = mem.add_many(FACTS)
    hot = [items[1].id, items[3].id]
    recall(mem, hot, 3)
    plan = mem.scheduler.plan()
    (step,) = plan.steps
    assert step.kind == "promote_snapshot" and sorted(step.items) == sorted(hot)
    report = mem.scheduler.run()
    (job,) = report.jobs
    assert job.status == "done", job.error
    snapshot = mem.activation.info(job.result["artifact"])
    assert snapshot.items == 2 and snapshot.scheduled
    reply = mem.chat("What is Mira's cat called?", max_new_tokens=8)
    assert reply.snapshot_id == snapshot.id and reply.cached_tokens == snapshot.tokens
    assert mem.scheduler.plan().steps == []
    with mem.db.read() as session:
        built = session.scalar(select(Event).where(Event.kind == "kv.build"))
    assert (
        built is not None and built.reason is not None and built.reason.startswith("scheduler: hot")
    )
    assert (built.from_tier, built.to_tier) == ("plaintext", "activation")

    tick(mem, 15)  # unused for longer than snapshot_idle_days: evicted
    (evict,) = [s for s in mem.scheduler.plan().steps if s.kind == "evict_snapshot"]
    assert evict.artifact == snapshot.id and evict.rule.startswith("idle")
    mem.close()


def test_scheduled_consolidation_end_to_end(tmp_path: Path, lm: LanguageModel) -> None:
    mem = open_mem(
        tmp_path,
        lm,
        consolidate_min_access=2,
        consolidate_min_stability_days=7,
        consolidate_min_batch=2,
        hot_min_access=99,
        train=QUICK_TRAIN,
    )
    items = mem.add_many(FACTS[:3])
    recall(mem, [i.id for i in items[:2]], 2)
    (step,) = mem.scheduler.plan().steps
    assert step.kind == "consolidate" and sorted(step.items) == sorted(i.id for i in items[:2])
    (job,) = mem.scheduler.run().jobs
    assert job.status == "done", job.error
    (adapter,) = mem.parametric.adapters()
    assert adapter.id == job.result["artifact"] and adapter.items == 2
    assert mem.scheduler.plan().steps == []

    mem.update(items[0].id, "Zorbil's favourite colour is teal.")
    (rebuild,) = mem.scheduler.plan().steps
    assert rebuild.kind == "rebuild_adapter" and rebuild.rule == "source item updated"
    (job,) = mem.scheduler.run().jobs
    assert job.status == "done", job.error
    assert job.result["retired"]
    (fresh,) = mem.parametric.adapters()
    assert fresh.id != adapter.id and not fresh.stale
    assert mem.scheduler.plan().steps == []
    mem.close()


CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from datetime import datetime
    sys.path.insert(0, {tests!r})
    from helpers import HashingEmbedder
    from memos import Memos
    from memos.clock import ManualClock
    from memos.config import MemosConfig
    from memos.scheduler import jobs

    finish = jobs.finish

    def crash_after_promote(db, job_id, status, result, error, now):
        if "artifact" in result:  # the snapshot is built and registered: die now
            os.kill(os.getpid(), signal.SIGKILL)
        return finish(db, job_id, status, result, error, now)

    jobs.finish = crash_after_promote
    clock = ManualClock()
    clock.set(datetime.fromisoformat({now!r}))
    mem = Memos(MemosConfig(home={home!r}, lm={lm!r}), embedder=HashingEmbedder(), clock=clock)
    mem.scheduler.run()
    print("not killed")
    """
)


def test_killed_run_is_finished_by_the_next_with_no_duplicates(
    tmp_path: Path, lm: LanguageModel
) -> None:
    mem = open_mem(tmp_path, lm)
    stale = mem.add("the old locker number was 12")
    tick(mem, 12)
    items = mem.add_many(FACTS)
    recall(mem, [items[0].id, items[2].id], 3)
    now = mem.clock.now()
    mem.close()

    script = CHILD.format(
        tests=str(Path(__file__).parent), now=now.isoformat(), home=str(tmp_path), lm=str(lm.path)
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert child.returncode == -signal.SIGKILL, child.stdout + child.stderr

    mem = open_mem(tmp_path, lm)
    mem.clock.set(now)  # type: ignore[attr-defined]
    with mem.db.read() as session:
        jobs = {j.kind: j.status for j in session.scalars(select(Job))}
    assert jobs == {"decay": "done", "promote_snapshot": "running"}
    assert len(mem.activation.snapshots()) == 1  # registered before the kill

    report = mem.scheduler.run()
    assert [(j.kind, j.status) for j in report.resumed] == [("promote_snapshot", "done")]
    assert report.jobs == []
    (snapshot,) = mem.activation.snapshots()
    assert snapshot.id == report.resumed[0].result["artifact"]
    assert sorted(p.name for p in Path(snapshot.path).parent.iterdir()) == [
        Path(snapshot.path).name
    ]
    assert mem.get(stale.id).state == "cold"
    assert len(mem.list(limit=100)) == len(FACTS) + 1  # nothing lost
    assert mem.scheduler.plan().steps == []
    mem.close()
