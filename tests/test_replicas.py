"""Stateless replicas: several ``memos serve`` on one PostgreSQL and one S3 store.

Each replica is a real process with a home of its own, as separate machines
would have; they share only the database and the artifact store, an
S3-compatible server (moto's server mode) on 127.0.0.1. The language model is
a tiny random model of the default's architecture: these tests check where
snapshots and adapters travel, not what the model says.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import open_memos
from lm_helpers import tiny_model_folder
from pg import create_database
from s3_helpers import BUCKET, S3_ENV
from service_helpers import ServeProcess, bearer

from memos.service import keys


class Cluster:
    """Replicas of one store: their shared settings and a key of tenant acme."""

    def __init__(self, base: Path, url: str, env: dict[str, str], key: str) -> None:
        self.base, self.url, self.env, self.key = base, url, env, key
        self.replicas: list[ServeProcess] = []

    def start(self, name: str, workers: int = 1) -> ServeProcess:
        home = self.base / name / "home"
        home.parent.mkdir(parents=True, exist_ok=True)
        replica = ServeProcess(home, workers=workers, db_url=self.url, env=self.env)
        self.replicas.append(replica)
        return replica

    def client(self, replica: ServeProcess) -> httpx.Client:
        return httpx.Client(base_url=replica.url, headers=bearer(self.key), timeout=120)

    def stop(self) -> None:
        for replica in self.replicas:
            replica.stop()


@pytest.fixture(scope="module")
def cluster(
    pg_server: str, s3_endpoint: str, lm: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    base = tmp_path_factory.mktemp("replicas")
    url = create_database(pg_server)
    env = {
        **S3_ENV,
        "MEMOS_ARTIFACTS": f"s3://{BUCKET}/store",
        "MEMOS_S3_ENDPOINT_URL": s3_endpoint,
        "MEMOS_LM": str(tiny_model_folder(lm, base / "tiny-lm")),
    }
    admin = open_memos(base / "admin", url)
    key, _ = keys.create_key(admin.db, "acme", ("read", "write", "admin"), admin.clock.now())
    admin.close()
    made = Cluster(base, url, env, key)
    made.start("a")
    made.start("b")
    yield made
    made.stop()


def _wait_job(client: httpx.Client, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("done", "failed"):
            assert job["status"] == "done", job
            return dict(job["result"])
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish")


def test_an_add_on_one_replica_is_found_on_another_at_once(cluster: Cluster) -> None:
    a, b = cluster.replicas[:2]
    with cluster.client(a) as on_a, cluster.client(b) as on_b:
        on_b.post("/v1/cubes/notes/search", json={"query": "warm the index"})
        for n in range(10):
            text = f"the lighthouse keeper logged storm number {n}"
            added = on_a.post("/v1/cubes/notes/items", json={"text": text}).json()
            hits = on_b.post("/v1/cubes/notes/search", json={"query": f"storm number {n}"})
            assert added["id"] in [h["item"]["id"] for h in hits.json()]


def test_a_snapshot_built_through_one_replica_serves_a_chat_on_another(cluster: Cluster) -> None:
    a, b = cluster.replicas[:2]
    with cluster.client(a) as on_a, cluster.client(b) as on_b:
        on_a.post("/v1/cubes/kv/items", json={"text": "Ada keeps the spare oars in the shed"})
        queued = on_a.post("/v1/cubes/kv/snapshots", json={"max_tokens": 128})
        assert queued.status_code == 202, queued.text
        snapshot_id = _wait_job(on_a, queued.json()["jobs"][0])["artifact"]
        listed = on_b.get("/v1/snapshots", params={"cube": "kv"}).json()
        assert [s["id"] for s in listed] == [snapshot_id]
        assert not Path(cluster.base / "b" / "home" / listed[0]["path"]).exists()
        reply = on_b.post("/v1/cubes/kv/chat", json={"message": "where?", "max_new_tokens": 2})
        assert reply.status_code == 200, reply.text
        assert reply.json()["snapshot_id"] == snapshot_id  # fetched from S3, checked, used
        assert (cluster.base / "b" / "home" / listed[0]["path"]).is_file()


def test_an_adapter_attached_or_detached_through_one_replica_holds_on_another(
    cluster: Cluster,
) -> None:
    a, b = cluster.replicas[:2]
    with cluster.client(a) as on_a, cluster.client(b) as on_b:
        on_a.post("/v1/cubes/ad/items", json={"text": "Bo's locker code is 4417"})
        body = {"rank": 2, "steps": 2, "layers": [1], "gate": False, "locality_weight": 0}
        queued = on_a.post("/v1/cubes/ad/adapters", json=body)
        adapter_id = _wait_job(on_a, queued.json()["jobs"][0])["artifact"]
        assert on_a.post(f"/v1/adapters/{adapter_id}/attach").json()["attached"]
        asked = {"message": "code?", "max_new_tokens": 1}
        assert on_b.post("/v1/cubes/ad/chat", json=asked).json()["adapters"] == [adapter_id]
        on_a.post(f"/v1/adapters/{adapter_id}/detach")
        assert on_b.post("/v1/cubes/ad/chat", json=asked).json()["adapters"] == []


def test_killing_a_replica_under_load_loses_no_acknowledged_write(cluster: Cluster) -> None:
    doomed = cluster.start("doomed")
    survivor = cluster.replicas[0]
    acked: dict[str, str] = {}
    errors: list[str] = []
    stop = threading.Event()

    def write(replica: Any, tag: str) -> None:
        with cluster.client(replica) as client:
            n = 0
            while not stop.is_set():
                text = f"{tag} wrote entry {n}"
                n += 1
                try:
                    r = client.post("/v1/cubes/load/items", json={"text": text})
                except httpx.HTTPError:
                    continue  # the killed replica's connection: not acknowledged
                if r.status_code == 201:
                    acked[r.json()["id"]] = text
                elif replica is survivor:
                    errors.append(r.text)

    threads = [
        threading.Thread(target=write, args=(doomed, "doomed")),
        threading.Thread(target=write, args=(survivor, "survivor")),
    ]
    for thread in threads:
        thread.start()
    time.sleep(3)
    os.killpg(doomed.proc.pid, signal.SIGKILL)
    time.sleep(2)
    stop.set()
    for thread in threads:
        thread.join()
    assert errors == []
    with cluster.client(survivor) as client:
        for item_id, text in acked.items():
            assert client.get(f"/v1/items/{item_id}").json()["text"] == text
    assert any(t.startswith("survivor") for t in acked.values())


def test_a_replica_started_later_serves_everything(cluster: Cluster) -> None:
    late = cluster.start("late")
    with cluster.client(late) as client:
        hits = client.post("/v1/cubes/notes/search", json={"query": "storm number 3"}).json()
        assert "storm number 3" in hits[0]["item"]["text"]
        snapshots = client.get("/v1/snapshots", params={"cube": "kv"}).json()
        reply = client.post("/v1/cubes/kv/chat", json={"message": "hi", "max_new_tokens": 1})
        assert reply.json()["snapshot_id"] == snapshots[0]["id"]
