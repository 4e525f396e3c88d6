"""A service over a throwaway store with two tenants' keys, for the service tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers import open_memos
from pg import free_port

from memos.client import Memos
from memos.records import StateChange
from memos.scheduler import jobs
from memos.scheduler.steps import DecayStep
from memos.service import keys
from memos.store import EventSpec, artifacts
from memos.store.artifacts import NewArtifact

SECRET = "alice keeps the spare key under the blue flowerpot"


@dataclass
class Tenants:
    """A store where tenant alice owns a cube with one item, a job and two artifacts."""

    mem: Memos
    alice: str  # read, write, admin
    alice_read: str  # read only
    revoked: str  # alice's, revoked
    bob: str  # read, write, admin
    item_id: str
    job_id: str
    snapshot_id: str
    adapter_id: str


def tenants(home: Path, url: str | None = None, lm: Any = None) -> Tenants:
    mem = open_memos(home, url, lm)
    now = mem.clock.now()
    alice, _ = keys.create_key(mem.db, "alice", ("read", "write", "admin"), now, "alice")
    alice_read, _ = keys.create_key(mem.db, "alice", ("read",), now, "alice-ro")
    revoked, info = keys.create_key(mem.db, "alice", ("read", "write", "admin"), now, "old")
    keys.revoke_key(mem.db, info.id, now)
    bob, _ = keys.create_key(mem.db, "bob", ("read", "write", "admin"), now, "bob")
    record = mem.add(SECRET, cube="alice/notes", tags=["home"])
    change = StateChange(record.id, "alice/notes", "active", "warm", 0.5)
    (job_id,) = jobs.enqueue(
        mem.db, str(uuid.uuid4()), [DecayStep("alice/notes", "test", now, (change,))], now
    )
    cube = mem.core.cube("alice/notes")
    ids = []
    for kind in ("kv", "adapter"):
        artifact_id = str(uuid.uuid4())
        path = mem.config.home / kind / f"{artifact_id}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        meta = {"tokens": 1, "dtype": "float32", "layers": [0], "rank": 1, "training": {}}
        artifacts.register(
            mem.db,
            mem.config.home,
            cube,
            NewArtifact(artifact_id, kind, path, "0" * 64, 1, "fp", meta),
            [record],
            EventSpec(now, f"{kind}.build"),
        )
        ids.append(artifact_id)
    return Tenants(mem, alice, alice_read, revoked, bob, record.id, job_id, ids[0], ids[1])


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class ServeProcess:
    """``memos serve`` on 127.0.0.1 as a real process (its own process group).

    Waits (bounded) until ``/healthz`` answers; :meth:`stop` ends the group.
    """

    def __init__(
        self,
        home: Path,
        *,
        workers: int = 1,
        db_url: str | None = None,
        extra: tuple[str, ...] = (),
        embedder: str = "hashing",
        env: dict[str, str] | None = None,
    ) -> None:
        import os
        import subprocess
        import sys

        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        db = ["--db", db_url] if db_url else []
        cmd = [
            sys.executable,
            "-m",
            "memos.cli.main",
            "--home",
            str(home),
            "--embedder",
            embedder,
            *db,
            "serve",
            "--port",
            str(self.port),
            "--workers",
            str(workers),
            *extra,
        ]
        self.log = open(home.parent / f"serve-{self.port}.log", "w")  # noqa: SIM115
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen(
            cmd, stdout=self.log, stderr=subprocess.STDOUT, env=full_env, start_new_session=True
        )
        self._wait_healthy(timeout_s=90)

    def _wait_healthy(self, timeout_s: float) -> None:
        import time

        import httpx

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"memos serve exited: {Path(self.log.name).read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(
            f"memos serve did not come up: {Path(self.log.name).read_text()[-2000:]}"
        )

    def worker_pids(self) -> list[int]:
        """Pids of the uvicorn worker processes (children of the server)."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        found = [int(p) for p in children.read_text().split()] if children.exists() else []
        # the workers are spawned by multiprocessing (not its resource tracker)
        return [p for p in found if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text()]

    def stop(self) -> None:
        import os
        import signal
        import subprocess

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=20)
        self.log.close()

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
