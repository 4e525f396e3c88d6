"""The routes that reach the language model, through the service, on the real default model.

Snapshot builds and training answer 202 with a job followed at ``/v1/jobs/{id}``;
attach and detach are database flags that every worker obeys before its next
chat (shown with a second app over the same store: a detach made there takes
the adapter off this app's model); another tenant gets 404 throughout. The
remote SDK's twins of the embedded calls run on the same store.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers import open_memos
from service_helpers import SECRET, bearer, tenants

from memos.errors import UnknownCubeError
from memos.lm import LanguageModel
from memos.parametric import side_memory as sm
from memos.service.app import create_app
from memos.service.remote import RemoteMemos

pytestmark = pytest.mark.real_model

FACTS = [
    "Alice's parrot is called Mango.",
    "Alice works night shifts at the hospital.",
]
# no locality term or gate: their reference passes cost more than the two steps
TINY = {"rank": 2, "steps": 2, "layers": [10], "locality_weight": 0.0, "gate": False}


def _follow(client: TestClient, job_id: str, key: str) -> dict[str, Any]:
    deadline = time.monotonic() + 300  # a training job on 2 busy CPU cores
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}", headers=bearer(key)).json()
        if job["status"] in ("done", "failed"):
            return dict(job)
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def test_snapshot_train_attach_chat_detach(tmp_path: Path, lm: LanguageModel) -> None:
    t = tenants(tmp_path / "home", lm=lm)
    facts = t.mem.add_many(FACTS, cube="alice/notes")
    alice, bob = bearer(t.alice), bearer(t.bob)
    other = open_memos(tmp_path / "home", lm=lm)  # a second worker on the same store
    try:
        with (
            TestClient(create_app(t.mem, mcp=False)) as client,
            TestClient(create_app(other, mcp=False)) as worker2,
        ):
            # a snapshot build is a job: 202, followed to done, then listed
            queued = client.post(
                "/v1/cubes/notes/snapshots",
                json={"query": "parrot", "max_tokens": 128},
                headers=alice,
            )
            assert queued.status_code == 202, queued.text
            (job_id,) = queued.json()["jobs"]
            assert client.get(f"/v1/jobs/{job_id}", headers=bob).status_code == 404
            job = _follow(client, job_id, t.alice)
            assert job["status"] == "done" and job["kind"] == "build_snapshot", job
            snapshot_id = job["result"]["artifact"]
            listed = client.get("/v1/snapshots", params={"cube": "notes"}, headers=alice).json()
            assert snapshot_id in [s["id"] for s in listed]
            assert client.get("/v1/snapshots", headers=bob).json() == []

            reply = client.post(
                "/v1/cubes/notes/chat",
                json={"message": "What is the parrot called?", "max_new_tokens": 4},
                headers=alice,
            )
            assert reply.status_code == 200, reply.text
            assert reply.json()["snapshot_id"] == snapshot_id and reply.json()["new_tokens"] >= 1

            # training is a job too; the adapter starts detached
            ids = [r.id for r in facts]
            queued = client.post(
                "/v1/cubes/notes/adapters", json={"items": ids, **TINY}, headers=alice
            )
            assert queued.status_code == 202, queued.text
            job = _follow(client, queued.json()["jobs"][0], t.alice)
            assert job["status"] == "done" and job["kind"] == "train_adapter", job
            adapter_id = job["result"]["artifact"]
            (adapter,) = [
                a for a in client.get("/v1/adapters", headers=alice).json() if a["id"] == adapter_id
            ]
            assert adapter["cube"] == "notes" and adapter["rank"] == 2 and adapter["layers"] == [10]
            assert not adapter["attached"]

            # bob: alice's adapter and cube do not exist for him
            for action in ("attach", "detach"):
                refused = client.post(f"/v1/adapters/{adapter_id}/{action}", headers=bob)
                assert (
                    refused.status_code == 404 and refused.json()["error"] == "UnknownAdapterError"
                )
            refused = client.post("/v1/cubes/notes/chat", json={"message": "key?"}, headers=bob)
            assert refused.status_code == 404 and SECRET not in refused.text

            attached = client.post(f"/v1/adapters/{adapter_id}/attach", headers=alice)
            assert attached.status_code == 200 and attached.json()["attached"], attached.text
            reply = client.post(
                "/v1/cubes/notes/chat",
                json={"message": "Where does Alice work?", "max_new_tokens": 4},
                headers=alice,
            ).json()
            assert reply["snapshot_id"] is None  # with an adapter on, memories are read as text
            assert set(sm.attached(lm.model)) == {adapter_id}

            # detached through the other worker: this one takes it off before its next chat
            detached = worker2.post(f"/v1/adapters/{adapter_id}/detach", headers=alice)
            assert detached.status_code == 200 and not detached.json()["attached"]
            assert set(sm.attached(lm.model)) == {adapter_id}  # nothing has generated yet
            reply = client.post(
                "/v1/cubes/notes/chat",
                json={"message": "What is the parrot called?", "max_new_tokens": 4},
                headers=alice,
            ).json()
            assert sm.attached(lm.model) == {}
            assert reply["snapshot_id"] == snapshot_id

            # the remote SDK: the embedded signatures, the work done by the service
            remote = RemoteMemos("http://testserver", api_key=t.alice, http=client)
            snapshot = remote.build_snapshot("notes", items=facts[:1], max_tokens=64)
            assert snapshot.cube == "notes" and snapshot.items == 1
            info = remote.consolidate("notes", items=facts, **{**TINY, "layers": (10,)})
            assert info.cube == "notes" and info.layers == [10] and not info.attached
            assert remote.parametric.attach(info.id).attached
            answer = remote.chat("Where does Alice work?", cube="notes", max_new_tokens=3)
            assert answer.snapshot_id is None and set(sm.attached(lm.model)) == {info.id}
            assert not remote.parametric.detach(info.id).attached
            remote.chat("Where does Alice work?", cube="notes", max_new_tokens=1)
            assert sm.attached(lm.model) == {}  # the shared model is left as it was
            # (bob's remote last: it sets its key on the shared client)
            with pytest.raises(UnknownCubeError):
                RemoteMemos("http://testserver", api_key=t.bob, http=client).chat(
                    "key?", cube="notes"
                )
    finally:
        other.close()
        t.mem.close()
