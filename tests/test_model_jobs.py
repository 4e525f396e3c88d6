"""Model jobs on Ray: a snapshot build and a training run as Ray tasks, record
their task on the job row, and their artifacts serve another replica's chat;
a job whose runner died is resumed and yields one artifact, not two.

The Ray cluster is a local one (``ray.init(num_cpus=2)``); the store is
PostgreSQL with its artifacts on an S3-compatible server; the language model
is a tiny random model of the default's architecture.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import open_memos
from lm_helpers import tiny_model_folder
from pg import create_database
from s3_helpers import BUCKET, S3_ENV

from memos.client import Memos
from memos.scheduler.runner import JobInterrupted
from memos.scheduler.steps import Step
from memos.service.tenancy import TenantMemos


def test_a_job_whose_runner_died_is_resumed_and_yields_one_artifact(
    tmp_path: Path, lm: Any
) -> None:
    mem = open_memos(tmp_path / "home", lm=lm)
    view = TenantMemos(mem, "acme")
    view.add("Ada keeps the spare oars in the shed", cube="kv")
    calls: list[str] = []

    def dies_after_the_work(job_id: str, step: Step) -> dict[str, Any]:
        result = mem.scheduler.apply_here(job_id, step)  # the artifact is made ...
        calls.append(job_id)
        if len(calls) == 1:
            raise JobInterrupted("the worker died before it could report")  # ... unreported
        return result

    mem.scheduler.model_jobs = dies_after_the_work
    _, (job_id,) = view.enqueue_snapshot("kv", max_tokens=64)
    view.apply_jobs([job_id])
    assert view.job(job_id).status == "running"  # left to be resumed
    report = mem.scheduler.run("acme/kv")
    assert [j.id for j in report.resumed] == [job_id] and report.resumed[0].status == "done"
    assert calls == [job_id, job_id]
    assert len(view.snapshots("kv")) == 1  # the same artifact, not a second one
    mem.close()


@pytest.fixture(scope="module")
def ray_cluster(s3_endpoint: str) -> Iterator[Any]:
    ray = pytest.importorskip("ray", reason="Ray is an optional extra (pip install '.[ray]')")
    os.environ.update(S3_ENV)
    os.environ["MEMOS_S3_ENDPOINT_URL"] = s3_endpoint
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield ray
    ray.shutdown()


def test_snapshot_and_training_jobs_run_on_ray_and_serve_another_replica(
    ray_cluster: Any, pg_server: str, lm: Any, tmp_path: Path
) -> None:
    url = create_database(pg_server)
    shared = {
        "database_url": url,
        "artifacts": f"s3://{BUCKET}/ray",
        "lm": str(tiny_model_folder(lm, tmp_path / "tiny-lm")),
    }
    from memos.clock import ManualClock
    from memos.config import MemosConfig
    from memos.plaintext.embedder import HashingEmbedder

    def replica(name: str, **extra: Any) -> Memos:
        config = MemosConfig(home=tmp_path / name, **shared, **extra)
        return Memos(config, embedder=HashingEmbedder(), clock=ManualClock())

    a, b = replica("a", jobs="ray"), replica("b")
    a.check_setup()
    on_a, on_b = TenantMemos(a, "acme"), TenantMemos(b, "acme")
    on_a.add("Bo's locker code is 4417", cube="notes")
    snapshot = on_a.build_snapshot("notes", max_tokens=64)
    adapter = on_a.consolidate("notes", rank=2, steps=2, layers=[1], gate=False, locality_weight=0)
    for job in on_a.jobs():
        assert job.status == "done" and "ray_task" in job.result and "ray_node" in job.result
    assert not (tmp_path / "a" / snapshot.path).exists()  # built on Ray, kept in S3
    reply = on_b.chat("code?", cube="notes", max_new_tokens=1)
    assert reply.snapshot_id == snapshot.id
    on_a.attach_adapter(adapter.id)
    assert on_b.chat("code?", cube="notes", max_new_tokens=1).adapters == [adapter.id]
    a.close()
    b.close()


def test_a_ray_address_that_is_down_fails_serve_at_start_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from memos.cli.main import app
    from typer.testing import CliRunner

    runner = CliRunner()
    monkeypatch.setenv("MEMOS_EMBEDDER", "hashing")
    for address, says in (
        ("ray://127.0.0.1:9", "cannot reach the Ray cluster ray://127.0.0.1:9"),
        ("ray://head", "is not ray://host:port"),
    ):
        monkeypatch.setenv("MEMOS_JOBS", address)
        result = runner.invoke(app, ["--home", str(tmp_path / "home"), "serve", "--port", "1"])
        assert result.exit_code == 1 and says in result.output
        assert len(result.output.strip().splitlines()) == 1
