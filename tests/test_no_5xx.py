"""No 5xx, no poisoned cube, a remote client that cannot be steered.

One test (or more) per finding of the review of the service's bad-input
handling; each failed before the fix. Where a door is named, the check runs
through that door: the HTTP app (SQLite and PostgreSQL), the remote SDK, the
embedded SDK, or ``memos mcp`` over stdio as a real process.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers import open_memos
from service_helpers import SECRET, Tenants, bearer, tenants

from memos import errors
from memos.client import Memos
from memos.service import keys
from memos.service.app import create_app
from memos.service.remote import RemoteMemos
from memos.validation import JSON_MAX_DEPTH


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[tuple[Tenants, TestClient]]:
    t = tenants(tmp_path / "home", db_url)
    with TestClient(create_app(t.mem, mcp=False), raise_server_exceptions=False) as client:
        yield t, client
    t.mem.close()


@pytest.fixture
def remote(world: tuple[Tenants, TestClient]) -> RemoteMemos:
    t, client = world
    return RemoteMemos("http://testserver", api_key=t.alice, http=client)


# -- 1. one write cannot poison a cube ------------------------------------------------


@pytest.mark.parametrize("depth", [JSON_MAX_DEPTH + 1, 256, 300])
def test_metadata_too_deep_is_refused_and_the_cube_stays_readable(
    world: tuple[Tenants, TestClient], depth: int
) -> None:
    t, client = world
    before = client.get("/v1/cubes/notes/items", headers=bearer(t.alice)).json()
    add = client.post(
        "/v1/cubes/notes/items",
        json={"text": "deep", "metadata": _nested(depth)},
        headers=bearer(t.alice),
    )
    assert add.status_code == 400 and add.json()["error"] == "InvalidInputError", add.text
    assert client.get("/v1/cubes/notes/items", headers=bearer(t.alice)).json() == before
    search = client.post("/v1/cubes/notes/search", json={"query": "deep"}, headers=bearer(t.alice))
    assert search.status_code == 200


def test_metadata_at_the_depth_limit_is_stored_and_read_back(
    world: tuple[Tenants, TestClient],
) -> None:
    t, client = world
    metadata = _nested(JSON_MAX_DEPTH)
    add = client.post(
        "/v1/cubes/notes/items",
        json={"text": "deep", "metadata": metadata},
        headers=bearer(t.alice),
    )
    assert add.status_code == 201, add.text
    listed = client.get("/v1/cubes/notes/items", headers=bearer(t.alice))
    assert listed.status_code == 200 and metadata in [i["metadata"] for i in listed.json()]


# -- 2. the remote SDK cannot be steered ------------------------------------------------


def test_remote_cube_and_id_arguments_stay_in_their_segment(
    world: tuple[Tenants, TestClient], remote: RemoteMemos
) -> None:
    t, client = world
    other = remote.add("another memory of alice", cube="notes")
    remote.delete(other.id)
    seen: list[bytes] = []
    client.event_hooks["request"] = [lambda request: seen.append(request.url.raw_path)]
    with pytest.raises(errors.InvalidInputError):
        remote.search("q", cube=f"../items/{other.id}/restore?x=")
    assert remote.get(other.id).state == "deleted"  # not restored
    with pytest.raises(errors.UnknownItemError):
        remote.update(f"../items/{t.item_id}?x=", text="steered")
    assert remote.get(t.item_id).text == SECRET
    with pytest.raises(errors.UnknownItemError):
        remote.get("../cubes")
    for bad in ("..", ".", "a/b", "a?b", "a#b", "a%2Fb", "%2E%2E", "?", "#"):
        with pytest.raises(errors.NotFoundError):
            remote.get(bad)
        with pytest.raises(errors.MemosError):
            remote.stats(bad)
    for raw in seen:
        path = raw.split(b"?")[0].split(b"/")
        assert path[:3] in ([b"", b"v1", b"items"], [b"", b"v1", b"cubes"]), raw
        assert len(path) <= 5, raw  # /v1/items/<id>[/history], /v1/cubes/<cube>/stats
        assert b"#" not in raw


# -- 3. typed 4xx instead of 500 --------------------------------------------------------


def test_lone_surrogates_in_json_ids_are_typed_errors(world: tuple[Tenants, TestClient]) -> None:
    t, client = world
    surrogate = "\ud800"  # json.dumps writes it as the escape \ud800
    cases = [
        ("/v1/recalls", {"ids": [surrogate]}, 404),
        ("/v1/cubes/notes/snapshots", {"items": [surrogate]}, 404),
        ("/v1/cubes/notes/adapters", {"items": [surrogate]}, 404),
        ("/v1/cubes/notes/search", {"query": "q", "filter": {"exclude_ids": [surrogate]}}, 400),
        ("/v1/cubes/notes/context", {"query": "q", "filter": {"exclude_ids": [surrogate]}}, 400),
    ]
    headers = {**bearer(t.alice), "Content-Type": "application/json"}
    for path, body, status in cases:
        response = client.post(path, content=json.dumps(body).encode(), headers=headers)
        assert response.status_code == status, (path, response.text)


def test_nul_in_any_id_is_a_typed_not_found(world: tuple[Tenants, TestClient]) -> None:
    t, client = world
    h = bearer(t.alice)
    requests = [
        ("GET", "/v1/items/a%00b", None),
        ("GET", "/v1/items/a%00b/history", None),
        ("PATCH", "/v1/items/a%00b", {"text": "x"}),
        ("DELETE", "/v1/items/a%00b", None),
        ("POST", "/v1/items/a%00b/restore", None),
        ("POST", "/v1/items/a%00b/purge", None),
        ("GET", "/v1/jobs/a%00b", None),
        ("DELETE", "/v1/snapshots/a%00b", None),
        ("DELETE", "/v1/adapters/a%00b", None),
        ("POST", "/v1/adapters/a%00b/attach", None),
        ("POST", "/v1/adapters/a%00b/detach", None),
        ("POST", "/v1/recalls", {"ids": ["a\x00b"]}),
        ("POST", "/v1/cubes/notes/snapshots", {"items": ["a\x00b"]}),
    ]
    for method, path, body in requests:
        response = client.request(method, path, json=body, headers=h)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"].startswith("Unknown"), (method, path)
    search = client.post(
        "/v1/cubes/notes/search",
        json={"query": "q", "filter": {"exclude_ids": ["a\x00"]}},
        headers=h,
    )
    assert search.status_code == 400


def test_an_import_line_with_a_huge_number_or_deep_nesting_is_a_typed_error(
    world: tuple[Tenants, TestClient],
) -> None:
    t, client = world
    header = '{"memos_export": 1, "cubes": ["notes"]}\n'
    for line in ('{"n": ' + "9" * 5000 + "}", "[" * 100_000 + "]" * 100_000):
        response = client.post(
            "/v1/import",
            content=(header + line + "\n").encode(),
            headers={**bearer(t.alice), "Content-Type": "application/x-ndjson"},
        )
        assert response.status_code == 400, response.text[:300]
        assert response.json()["error"] == "ImportFormatError"
    # the keep-alive connection still serves
    assert client.get("/v1/cubes", headers=bearer(t.alice)).status_code == 200


# -- 4. no raw errors from either SDK ----------------------------------------------------


@pytest.mark.parametrize(
    "flt",
    [{"exclude_ids": ["\ud800"]}, {"exclude_ids": ["a\x00"]}, {"metadata": {"k": 10**5000}}],
    ids=["surrogate", "nul", "huge-int"],
)
def test_bad_filters_are_typed_errors_in_the_embedded_sdk(any_mem: Memos, flt: Any) -> None:
    any_mem.add("something")
    with pytest.raises(errors.InvalidFilterError):
        any_mem.search("q", filter=flt)


@pytest.mark.parametrize(
    ("text", "metadata"),
    [
        ("x", {"s": {1, 2}}),
        ("x", {"when": __import__("datetime").datetime(2024, 1, 1)}),
        ("x", {"o": object()}),
        ("x", {"nan": float("nan")}),
        (b"bytes", None),
        ("lone \ud800", None),
    ],
    ids=["set", "datetime", "object", "nan", "bytes", "surrogate"],
)
def test_the_remote_sdk_raises_the_embedded_sdks_typed_errors(
    world: tuple[Tenants, TestClient], remote: RemoteMemos, text: Any, metadata: Any
) -> None:
    t, _ = world
    embedded = t.mem
    with pytest.raises(errors.MemosError) as local:
        embedded.add(text, metadata=metadata)
    with pytest.raises(errors.MemosError) as far:
        remote.add(text, metadata=metadata)
    assert type(far.value) is type(local.value)


# -- 5. memos mcp answers every line -------------------------------------------------------


def _mcp(home: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MEMOS_HOME": str(home), "MEMOS_EMBEDDER": "hashing"}
    memos = str(Path(sys.executable).with_name("memos"))
    return subprocess.Popen(
        [memos, "mcp"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


def _exchange(process: subprocess.Popen[bytes], line: str, timeout: float = 30) -> dict[str, Any]:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(line.encode("utf-8", "surrogatepass") + b"\n")
    process.stdin.flush()
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, f"no answer to {line[:80]!r}"
    answer: dict[str, Any] = json.loads(process.stdout.readline())
    return answer


def _call(request_id: int, arguments: dict[str, Any]) -> str:
    params = {"name": "remember", "arguments": arguments}
    return json.dumps(
        {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}
    )


def test_memos_mcp_over_stdio_answers_every_bad_line(tmp_path: Path) -> None:
    process = _mcp(tmp_path / "home")
    try:
        hello = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "test", "version": "1"},
            },
        }
        assert "result" in _exchange(process, json.dumps(hello))
        assert process.stdin is not None
        process.stdin.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
        bad_lines = [
            _call(2, {"text": "\ud800"}),
            json.dumps({"jsonrpc": "2.0", "id": 3, "method": "\ud800"}),
            "[" * 5000 + "]" * 5000,
            _call(4, {"text": "x", "metadata": _nested(300)}),
            "not json at all",
        ]
        for line in bad_lines:
            assert "error" in _exchange(process, line), line[:80]
        misspelt = _exchange(process, _call(5, {"text": "hello", "cueb": "notes"}))
        assert misspelt["result"]["isError"]
        good = _exchange(process, _call(6, {"text": "hello there"}))
        assert not good["result"].get("isError") and good["id"] == 6
    finally:
        process.kill()
        process.wait(timeout=10)


# -- 6. import is no cross-tenant existence oracle ------------------------------------------


def test_import_answers_the_same_for_another_tenants_id_and_a_fresh_one(
    world: tuple[Tenants, TestClient],
) -> None:
    t, client = world
    export = client.get("/v1/export", headers=bearer(t.alice)).text
    lines = export.splitlines()
    item = json.loads(lines[1])
    fresh = {**item, "id": "00000000-0000-4000-8000-000000000001"}
    reports = []
    for cube, line in (("first", item), ("second", fresh)):
        body = "\n".join([lines[0], json.dumps(line)]) + "\n"
        response = client.post(
            f"/v1/import?cube={cube}",
            content=body.encode(),
            headers={**bearer(t.bob), "Content-Type": "application/x-ndjson"},
        )
        assert response.status_code == 200, response.text
        reports.append({k: v for k, v in response.json().items() if k != "cubes"})
    assert reports[0] == reports[1] == {"imported": 1, "skipped": 0, "versions": 1}
    bobs = client.get("/v1/cubes/first/items", headers=bearer(t.bob)).json()
    assert [i["id"] for i in bobs] != [t.item_id]  # a fresh id, not alice's
    assert t.mem.get(t.item_id).cube == "alice/notes"  # alice's item is where it was
    own = client.post(
        "/v1/import",
        content=export.encode(),
        headers={**bearer(t.alice), "Content-Type": "application/x-ndjson"},
    ).json()
    assert own["skipped"] == 1 and own["imported"] == 0  # her own ids are skipped


# -- 7. the smaller ones ----------------------------------------------------------------------


def test_an_over_limit_content_length_gets_the_json_413(tmp_path: Path) -> None:
    mem = open_memos(tmp_path / "home")
    key, _ = keys.create_key(mem.db, "acme", ("read", "write"), mem.clock.now())
    with TestClient(create_app(mem, mcp=False, max_body_size=1000)) as client:
        response = client.post("/v1/cubes/c/items", content=b"x" * 5000, headers=bearer(key))
        assert response.status_code == 413
        assert response.json()["error"] == "ContentTooLarge"
    mem.close()


def test_export_onto_another_stores_database_is_refused(tmp_path: Path) -> None:
    other = open_memos(tmp_path / "other")
    other.add("precious")
    other.close()
    mem = open_memos(tmp_path / "home")
    mem.add("one")
    for target in (tmp_path / "other" / "memos.db", tmp_path / "renamed.sqlite"):
        if target.name == "renamed.sqlite":
            target.write_bytes((tmp_path / "other" / "memos.db").read_bytes())
        with pytest.raises(errors.PathError, match="database"):
            mem.export_jsonl(target)
    reopened = open_memos(tmp_path / "other")
    assert [r.text for r in reopened.list()] == ["precious"]
    reopened.close()
    mem.close()


def test_a_symlink_loop_in_an_export_path_is_a_path_error(mem: Memos, tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(errors.PathError):
        mem.export_jsonl(loop / "out.jsonl")


@pytest.mark.parametrize("name", [".", ".."])
def test_dot_cube_names_are_refused(mem: Memos, name: str) -> None:
    with pytest.raises(errors.InvalidInputError, match="cube name"):
        mem.add("x", cube=name)
    with pytest.raises(errors.InvalidInputError, match="cube name"):
        mem.create_cube(name)
    assert mem.cubes() == []


def test_listings_never_show_where_the_server_keeps_files(
    world: tuple[Tenants, TestClient],
) -> None:
    t, client = world
    home = str(t.mem.config.home)
    for path in ("/v1/snapshots", "/v1/adapters"):
        listed = client.get(path, headers=bearer(t.alice)).json()
        assert listed and all(not row["path"].startswith("/") for row in listed), listed
        assert home not in json.dumps(listed)


def test_metrics_count_only_the_callers_tenant(world: tuple[Tenants, TestClient]) -> None:
    t, client = world
    for _ in range(3):
        client.get("/v1/cubes", headers=bearer(t.bob))
    client.get("/v1/cubes", headers=bearer(t.alice))
    alice = client.get("/metrics", headers=bearer(t.alice)).text
    assert 'memos_http_requests_total{method="GET",route="/v1/cubes",status="200"} 1' in alice
    bob = client.get("/metrics", headers=bearer(t.bob)).text
    assert 'memos_http_requests_total{method="GET",route="/v1/cubes",status="200"} 3' in bob


def test_chat_history_has_a_size_limit(world: tuple[Tenants, TestClient]) -> None:
    t, client = world
    turn = {"role": "user", "content": "x" * 40_000}
    response = client.post(
        "/v1/cubes/notes/chat",
        json={"message": "hi", "history": [turn]},
        headers=bearer(t.alice),
    )
    assert response.status_code == 400 and "characters" in response.json()["message"]


def test_no_auth_refuses_a_host_or_origin_that_is_not_loopback(tmp_path: Path) -> None:
    mem = open_memos(tmp_path / "home")
    with TestClient(create_app(mem, auth=False, mcp=False), base_url="http://127.0.0.1") as client:
        assert client.get("/v1/cubes").status_code == 200
        assert client.get("/v1/cubes", headers={"Host": "evil.example"}).status_code == 403
        refused = client.get("/v1/cubes", headers={"Origin": "http://evil.example"})
        assert refused.status_code == 403 and refused.json()["error"] == "ForbiddenError"
        ok = client.get("/v1/cubes", headers={"Origin": "http://localhost:3000"})
        assert ok.status_code == 200
    mem.close()
