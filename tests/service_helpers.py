"""A service over a throwaway store with two tenants' keys, for the service tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from helpers import open_memos

from memos.client import Memos
from memos.lifecycle.decay import StateChange
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


def tenants(home: Path) -> Tenants:
    mem = open_memos(home)
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
        path = home / f"{artifact_id}.bin"
        path.write_bytes(b"x")
        meta = {"tokens": 1, "dtype": "float32", "layers": [0], "rank": 1, "training": {}}
        artifacts.register(
            mem.db,
            cube,
            NewArtifact(artifact_id, kind, path, "0" * 64, 1, "fp", meta),
            [record],
            EventSpec(now, f"{kind}.build"),
        )
        ids.append(artifact_id)
    return Tenants(mem, alice, alice_read, revoked, bob, record.id, job_id, ids[0], ids[1])


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
