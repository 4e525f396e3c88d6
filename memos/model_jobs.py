"""Model jobs on Ray: snapshot builds and trainings run where the GPUs are.

With ``MemosConfig.jobs`` set to ``"ray"`` (the cluster ``RAY_ADDRESS`` names,
else a local one) or ``"ray://host:port"``, the scheduler hands each job that
runs the language model (:data:`memos.scheduler.runner.MODEL_STEPS`) to
:class:`RayJobs`, which runs it as a Ray task:

- the task asks for a GPU when the cluster has one (``num_gpus=1``), a CPU
  otherwise;
- it opens the store in the Ray worker (the same database; its own home, or
  the service's when the worker shares its machine and no shared artifact
  store is set), reads its job's step from the job row, builds the artifact
  and puts it in the artifact store (:mod:`memos.store.artifact_files`);
- the job row records the task (``ray_task``, ``ray_node``) and its outcome;
- a worker killed mid-task leaves the job ``running`` (:class:`JobInterrupted`):
  the next scheduler run resumes it. The artifact is named after the job, so a
  resumed job rewrites the same artifact and never yields a second one.

The default, ``"local"``, runs jobs in the process that applies them: the
embedded SDK and a single ``memos serve`` need no Ray.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import tempfile
import threading
from pathlib import Path
from typing import Any

from memos.config import MemosConfig
from memos.errors import ConfigError
from memos.scheduler.runner import JobInterrupted
from memos.scheduler.steps import Step
from memos.store import jobs as job_rows
from memos.store.db import Database

log = logging.getLogger(__name__)
#: How long ``memos serve`` waits to reach a Ray cluster at start.
CONNECT_TIMEOUT_S = 10
_WORKER_STORES: dict[str, Any] = {}
_WORKER_LOCK = threading.Lock()


class RayJobs:
    """Runs model jobs as Ray tasks (see the module docs)."""

    def __init__(self, config: MemosConfig, db: Database) -> None:
        self.config = config
        self.db = db
        self._lock = threading.Lock()
        self._task: Any = None

    def connect(self) -> None:
        """Join the cluster now (``ConfigError`` in one line when it cannot be reached)."""
        address = self.config.jobs if self.config.jobs.startswith("ray://") else None
        if address is not None:
            _check_reachable(address)
        # Ray reads these when it is imported.
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        os.environ.setdefault("RAY_CLIENT_INITIAL_CONNECTION_TIMEOUT_S", str(CONNECT_TIMEOUT_S))
        try:
            import ray
        except ImportError:
            raise ConfigError(
                "MEMOS_JOBS=ray needs the ray package: pip install 'memos-tiers[ray]'"
            ) from None
        with self._lock:
            if ray.is_initialized():
                return
            try:
                if address is not None:
                    ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
                else:
                    ray.init(
                        ignore_reinit_error=True,
                        include_dashboard=False,
                        logging_level=logging.ERROR,
                        log_to_driver=False,
                    )
            except Exception as exc:  # ConnectionError, grpc errors, ValueError
                raise ConfigError(
                    f"cannot reach the Ray cluster {self.config.jobs}: {exc}"
                ) from None

    def __call__(self, job_id: str, step: Step) -> dict[str, Any]:
        """Run one model job on the cluster and return its result."""
        import ray
        from ray.exceptions import RayTaskError, WorkerCrashedError

        self.connect()
        task = self._remote()
        gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        ref = task.options(num_gpus=gpus, max_retries=0).remote(self.config, job_id)
        job_rows.note_job(self.db, job_id, ray_task=ref.task_id().hex(), ray_gpus=gpus)
        try:
            result: dict[str, Any] = ray.get(ref)
        except WorkerCrashedError as exc:
            raise JobInterrupted(f"the Ray worker running job {job_id} died") from exc
        except RayTaskError as exc:
            raise exc.as_instanceof_cause() from None
        return result

    def _remote(self) -> Any:
        if self._task is None:
            import ray

            self._task = ray.remote(run_job)
        return self._task


def run_job(config: MemosConfig, job_id: str) -> dict[str, Any]:
    """In a Ray worker: apply one model job of the store ``config`` names."""
    import socket

    from memos.activation.tier import ActivationTier
    from memos.core import Core
    from memos.parametric.tier import ParametricTier
    from memos.scheduler.runner import Scheduler
    from memos.scheduler.steps import step_from_job

    key = hashlib.sha256(repr((config.url, config.artifacts, config.lm)).encode()).hexdigest()
    with _WORKER_LOCK:
        scheduler = _WORKER_STORES.get(key)
        if scheduler is None:
            core = Core(_worker_config(config, key))
            activation, parametric = ActivationTier(core), ParametricTier(core)
            scheduler = Scheduler(core, lambda: activation, lambda: parametric)
            _WORKER_STORES[key] = scheduler
    started = job_rows.job_step(scheduler.core.db, job_id)
    step = step_from_job(started.kind, started.cube, started.rule, started.payload)
    result = scheduler.apply_here(job_id, step)
    return {**result, "ray_node": socket.gethostname()}


def _worker_config(config: MemosConfig, key: str) -> MemosConfig:
    """The store as a Ray worker opens it: the service's home when the files must
    land there (no shared artifact store), else a home of the worker's own."""
    if config.artifacts is None:
        return config
    home = Path(tempfile.gettempdir()) / f"memos-ray-{key[:16]}"
    return config.with_(home=home, database_url=config.url)


def _check_reachable(address: str) -> None:
    """Fail at once, in one line, when nothing listens at a ``ray://host:port``
    (the Ray client itself retries for its whole connection timeout)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"MEMOS_JOBS={address} is not ray://host:port")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"cannot reach the Ray cluster {address}: {reason}") from None
