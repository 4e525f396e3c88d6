"""Every route of the service is confined to the caller's tenant and scopes.

The table below names a request for every route the app has; a route added
without an entry fails :func:`test_every_route_has_an_isolation_case`, so no
route ships unchecked. Tenant bob (with every scope) must get 404 on each of
alice's objects, never see her text, and leave her data as it was.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from service_helpers import SECRET, Tenants, bearer, tenants

from memos.service.app import create_app

# (method, path template) -> (scope needed, request kwargs). Ids and cube names
# are filled from alice's objects.
CASES: dict[tuple[str, str], tuple[str | None, dict[str, Any]]] = {
    ("GET", "/v1/limits"): ("read", {}),
    ("GET", "/v1/cubes"): ("read", {}),
    ("POST", "/v1/cubes"): ("write", {"json": {"name": "notes"}}),
    ("GET", "/v1/cubes/{cube}/stats"): ("read", {}),
    ("POST", "/v1/cubes/{cube}/items"): ("write", {"json": {"text": "bob was here"}}),
    ("POST", "/v1/cubes/{cube}/items/batch"): ("write", {"json": {"items": [{"text": "b1"}]}}),
    ("POST", "/v1/cubes/{cube}/messages"): (
        "write",
        {"json": {"messages": [{"role": "user", "content": "hi from bob"}]}},
    ),
    ("POST", "/v1/cubes/{cube}/documents"): ("write", {"json": {"text": "a document by bob"}}),
    ("GET", "/v1/cubes/{cube}/items"): ("read", {}),
    ("POST", "/v1/cubes/{cube}/items/query"): ("read", {"json": {"limit": 5}}),
    ("POST", "/v1/cubes/{cube}/search"): ("read", {"json": {"query": "spare key flowerpot"}}),
    ("POST", "/v1/cubes/{cube}/context"): ("read", {"json": {"query": "where is the key"}}),
    ("POST", "/v1/cubes/{cube}/decay"): ("write", {"json": {"dry_run": True}}),
    ("GET", "/v1/export"): ("read", {"params": {"cube": "notes"}}),
    ("POST", "/v1/import"): ("admin", {"content": "IMPORT"}),
    ("GET", "/v1/items/{item_id}"): ("read", {}),
    ("GET", "/v1/items/{item_id}/history"): ("read", {}),
    ("POST", "/v1/recalls"): ("read", {"json": {"ids": ["ITEM"]}}),
    ("PATCH", "/v1/items/{item_id}"): ("write", {"json": {"text": "bob rewrote it"}}),
    ("DELETE", "/v1/items/{item_id}"): ("write", {}),
    ("POST", "/v1/items/{item_id}/restore"): ("write", {}),
    ("POST", "/v1/items/{item_id}/purge"): ("admin", {}),
    ("POST", "/v1/cubes/{cube}/scheduler/plan"): ("admin", {}),
    ("POST", "/v1/cubes/{cube}/scheduler/run"): ("admin", {}),
    ("GET", "/v1/jobs"): ("read", {}),
    ("GET", "/v1/jobs/{job_id}"): ("read", {}),
    ("GET", "/v1/snapshots"): ("read", {}),
    ("DELETE", "/v1/snapshots/{snapshot_id}"): ("write", {}),
    ("GET", "/v1/adapters"): ("read", {}),
    ("DELETE", "/v1/adapters/{adapter_id}"): ("write", {}),
    ("POST", "/v1/cubes/{cube}/snapshots"): ("write", {"json": {"items": ["ITEM"]}}),
    ("POST", "/v1/cubes/{cube}/adapters"): (
        "write",
        {"json": {"items": ["ITEM"], "rank": 2, "steps": 2, "layers": [10]}},
    ),
    ("POST", "/v1/adapters/{adapter_id}/attach"): ("write", {}),
    ("POST", "/v1/adapters/{adapter_id}/detach"): ("write", {}),
    ("POST", "/v1/cubes/{cube}/chat"): ("write", {"json": {"message": "where is the key"}}),
    ("POST", "/v1/chat/completions"): (
        "write",
        {
            "json": {
                "model": "m",
                "messages": [{"role": "user", "content": "where is the key"}],
                "metadata": {"cube": "notes"},
            }
        },
    ),
    ("GET", "/healthz"): (None, {}),
    ("GET", "/readyz"): (None, {}),
    ("GET", "/metrics"): ("admin", {}),
}
ID_PARAMS = ("{item_id}", "{job_id}", "{snapshot_id}", "{adapter_id}")
# Routes whose cases name alice's item in the body: bob gets 404 for it.
ITEM_IN_BODY = (
    "/v1/recalls",
    "/v1/cubes/{cube}/snapshots",
    "/v1/cubes/{cube}/adapters",
)
# Routes that would run the language model for a caller who may use them (this
# store's artifacts are fakes, and loading the model does not belong in these
# fast tests). Bob's requests to them are refused before the model (alice's
# ids), except chat in his own "notes" cube; alice's succeed in
# tests/test_service_lm.py, with the real model, where bob's chat is checked too.
RUNS_THE_MODEL = {
    ("POST", "/v1/cubes/{cube}/snapshots"),
    ("POST", "/v1/cubes/{cube}/adapters"),
    ("POST", "/v1/adapters/{adapter_id}/attach"),
    ("POST", "/v1/cubes/{cube}/chat"),
    ("POST", "/v1/chat/completions"),
}
# The /ui pages answer HTML (a login page instead of a 401): UI_CASES below.
UI_CASES: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/ui"): {},
    ("GET", "/ui/login"): {},
    ("POST", "/ui/login"): {"data": {"key": "KEY"}},
    ("POST", "/ui/logout"): {},
    ("GET", "/ui/cubes/{cube:path}"): {"params": {"q": "spare key flowerpot"}},
    ("GET", "/ui/items/{item_id}"): {},
    ("POST", "/ui/items/{item_id}/{action}"): {},
    ("GET", "/ui/jobs"): {},
}


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[tuple[Tenants, TestClient]]:
    t = tenants(tmp_path / "home", db_url)
    with TestClient(create_app(t.mem, mcp=False)) as client:
        yield t, client
    t.mem.close()


def _routes(
    client: TestClient, prefix: tuple[str, ...] = ("/v1", "/healthz", "/readyz", "/metrics")
) -> set[tuple[str, str]]:
    app: Any = client.app
    found = set()
    for route in app.routes:
        if isinstance(route, APIRoute) and route.path.startswith(prefix):
            found |= {(method, route.path) for method in route.methods - {"HEAD"}}
    return found


def _request(client: TestClient, t: Tenants, key: str, method: str, path: str) -> Any:
    _, kwargs = CASES[(method, path)]
    url = (
        path.replace("{cube}", "notes")
        .replace("{item_id}", t.item_id)
        .replace("{job_id}", t.job_id)
        .replace("{snapshot_id}", t.snapshot_id)
        .replace("{adapter_id}", t.adapter_id)
    )
    kwargs = json.loads(json.dumps(kwargs).replace("ITEM", t.item_id))
    if kwargs.get("content") == "IMPORT":
        export = client.get("/v1/export", headers=bearer(t.alice))
        assert export.status_code == 200 and SECRET in export.text
        kwargs["content"] = export.text
    return client.request(method, url, headers=bearer(key), **kwargs)


def test_every_route_has_an_isolation_case(world: tuple[Tenants, TestClient]) -> None:
    _, client = world
    assert _routes(client) == set(CASES), "add the new route to CASES (and check its tenancy)"
    every = {r for r in _routes(client, ("/",)) if not r[1].startswith(("/docs", "/openapi"))}
    assert every == set(CASES) | set(UI_CASES), "add the new route to CASES or UI_CASES"


def _ui_request(client: TestClient, t: Tenants, key: str, method: str, path: str) -> Any:
    kwargs = json.loads(json.dumps(UI_CASES[(method, path)]).replace("KEY", key))
    url = (
        path.replace("{cube:path}", "notes")
        .replace("{item_id}", t.item_id)
        .replace("{action}", "delete")
    )
    return client.request(method, url, headers=bearer(key), follow_redirects=False, **kwargs)


def test_ui_pages_are_confined_to_the_tenant(world: tuple[Tenants, TestClient]) -> None:
    """Every /ui page (here with bearer keys; tests/test_ui.py drives them in a
    browser): bob never sees alice's memories or reaches her ids; a revoked key
    is sent to the login page; a read-only key cannot change anything."""
    t, client = world
    for method, path in sorted(UI_CASES):
        response = _ui_request(client, t, t.bob, method, path)
        where = f"{method} {path}: {response.status_code} {response.text[:200]}"
        assert response.status_code < 500 and SECRET not in response.text, where
        if "{item_id}" in path:
            assert response.status_code == 404, where
        revoked = _ui_request(client, t, t.revoked, method, path)
        if path not in ("/ui/login", "/ui/logout"):
            assert revoked.status_code in (303, 401), f"{method} {path}: {revoked.status_code}"
            assert SECRET not in revoked.text
    mine = _ui_request(client, t, t.alice, "GET", "/ui/cubes/{cube:path}")
    assert mine.status_code == 200 and SECRET in mine.text
    refused = _ui_request(client, t, t.alice_read, "POST", "/ui/items/{item_id}/{action}")
    assert refused.status_code == 403
    assert t.mem.get(t.item_id).state == "active"


def test_another_tenant_gets_404_and_never_alices_memories(
    world: tuple[Tenants, TestClient],
) -> None:
    t, client = world
    before = client.get(f"/v1/items/{t.item_id}", headers=bearer(t.alice)).json()
    for method, path in sorted(CASES):
        if path in ("/v1/cubes/{cube}/chat", "/v1/chat/completions"):
            continue  # bob's own cube: see RUNS_THE_MODEL
        response = _request(client, t, t.bob, method, path)
        where = f"{method} {path}: {response.status_code} {response.text[:200]}"
        assert response.status_code < 500, where
        assert SECRET not in response.text, where
        assert t.item_id not in response.text or response.status_code == 404, where
        if any(p in path for p in ID_PARAMS) or path in ITEM_IN_BODY:
            assert response.status_code == 404, where
            assert response.json()["error"].startswith("Unknown"), where
    after = client.get(f"/v1/items/{t.item_id}", headers=bearer(t.alice)).json()
    assert after == before  # bob's updates, deletes and purges never reached it
    snapshots = client.get("/v1/snapshots", headers=bearer(t.alice)).json()
    assert [s["id"] for s in snapshots] == [t.snapshot_id]
    assert client.get(f"/v1/jobs/{t.job_id}", headers=bearer(t.alice)).status_code == 200
    assert client.get("/v1/cubes", headers=bearer(t.alice)).json() == {"cubes": ["notes"]}
    bob_items = client.get("/v1/cubes/notes/items", headers=bearer(t.bob)).json()
    # bob's own "notes" cube; importing the export file he was handed stores its
    # text under fresh ids (the import never says whether alice holds those ids)
    assert bob_items and all(item["id"] != t.item_id for item in bob_items)
    imported = [item for item in bob_items if item["text"] == SECRET]
    assert [item["source_kind"] for item in imported] == ["text"]


def test_alice_reaches_her_own_objects(world: tuple[Tenants, TestClient]) -> None:
    t, client = world
    # deletes after the rest, then restore (what was deleted), then a scheduler
    # run (it may evict the snapshot the update made stale); purge not at all
    order = sorted(
        CASES,
        key=lambda mp: (
            mp[1].endswith("/scheduler/run"),
            mp[0] == "DELETE",
            mp[1].endswith("/restore"),
        ),
    )
    for method, path in order:
        if path.endswith("/purge") or (method, path) in RUNS_THE_MODEL:
            continue
        response = _request(client, t, t.alice, method, path)
        assert response.status_code < 300, f"{method} {path}: {response.text[:300]}"


def test_revoked_key_is_401_and_read_only_key_is_403_on_writes(
    world: tuple[Tenants, TestClient],
) -> None:
    t, client = world
    for method, path in sorted(CASES):
        scope, _ = CASES[(method, path)]
        if scope is None:
            continue
        revoked = _request(client, t, t.revoked, method, path)
        assert revoked.status_code == 401, f"{method} {path}: {revoked.text}"
        assert revoked.json()["error"] == "AuthError"
        assert revoked.headers["www-authenticate"] == "Bearer"
        read_only = _request(client, t, t.alice_read, method, path)
        if scope == "read":
            assert read_only.status_code < 300, f"{method} {path}: {read_only.text}"
        else:
            assert read_only.status_code == 403, f"{method} {path}: {read_only.text}"
            assert read_only.json()["error"] == "ForbiddenError"
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic x"}):
        response = client.get("/v1/cubes", headers=headers)
        assert response.status_code == 401 and "Traceback" not in response.text
    assert t.mem.get(t.item_id).text == SECRET


def test_a_scheduler_run_is_a_202_with_jobs_to_follow(world: tuple[Tenants, TestClient]) -> None:
    t, client = world
    t.mem.update(t.item_id, "alice moved the key")  # her snapshot and adapter are now stale
    plan = client.post("/v1/cubes/notes/scheduler/plan", headers=bearer(t.alice)).json()
    assert plan["steps"] and {s["cube"] for s in plan["steps"]} == {"notes"}
    queued = client.post("/v1/cubes/notes/scheduler/run", headers=bearer(t.alice))
    assert queued.status_code == 202
    job_ids = queued.json()["jobs"]
    assert len(job_ids) == len(plan["steps"])
    for job_id in job_ids:
        assert client.get(f"/v1/jobs/{job_id}", headers=bearer(t.bob)).status_code == 404
        for _ in range(200):
            job = client.get(f"/v1/jobs/{job_id}", headers=bearer(t.alice)).json()
            if job["status"] in ("done", "failed"):
                break
            time.sleep(0.05)
        assert job["status"] == "done", job
    assert client.get("/v1/snapshots", headers=bearer(t.alice)).json() == []
    listed = {j["id"] for j in client.get("/v1/jobs", headers=bearer(t.alice)).json()}
    assert set(job_ids) <= listed
    assert client.get("/v1/jobs", headers=bearer(t.bob)).json() == []
