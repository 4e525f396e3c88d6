"""API keys: created once, stored hashed, listed without the key, revoked at once."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from helpers import open_memos
from memos.cli.main import app
from sqlalchemy import select
from typer.testing import CliRunner

from memos.errors import AuthError, InvalidInputError
from memos.service import keys
from memos.service.tenancy import TenantMemos
from memos.store.models import ApiKey, Cube


def test_keys_cli_create_ls_revoke(tmp_path: Path) -> None:
    home = ["--home", str(tmp_path / "h"), "--embedder", "hashing"]
    runner = CliRunner()
    made = runner.invoke(
        app,
        [*home, "keys", "create", "--tenant", "acme", "--scopes", "read", "--name", "ci", "--json"],
    )
    assert made.exit_code == 0, made.output
    created = json.loads(made.stdout)
    key = created["key"]
    assert key.startswith("memos_") and created["scopes"] == ["read"]
    listed = runner.invoke(app, [*home, "keys", "ls", "--json"])
    assert listed.exit_code == 0 and key not in listed.stdout
    assert json.loads(listed.stdout)[0]["tenant"] == "acme"
    mem = open_memos(tmp_path / "h")
    with mem.db.read() as session:
        row = session.scalar(select(ApiKey))
    assert row is not None and key not in (row.key_hash, row.prefix)
    assert keys.authenticate(mem.db, key).tenant == "acme"
    revoked = runner.invoke(app, [*home, "keys", "revoke", created["id"], "--json"])
    assert revoked.exit_code == 0 and json.loads(revoked.stdout)["revoked_at"]
    with pytest.raises(AuthError, match="revoked"):
        keys.authenticate(mem.db, key)
    bad = runner.invoke(app, [*home, "keys", "create", "--tenant", "acme", "--scopes", "root"])
    assert bad.exit_code == 1 and "allowed: read, write, admin" in bad.stderr
    mem.close()


def test_authenticate_refuses_wrong_and_tampered_keys(tmp_path: Path) -> None:
    mem = open_memos(tmp_path / "h")
    key, _ = keys.create_key(mem.db, "acme", ("read",), mem.clock.now())
    for wrong in (
        "",
        None,
        "memos_x_y",
        key[:-1] + ("A" if key[-1] != "A" else "B"),
        "Bearer " + key,
    ):
        with pytest.raises(AuthError) as caught:
            keys.authenticate(mem.db, wrong)
        assert key not in str(caught.value)
    info = keys.authenticate(mem.db, key)
    assert info.allows("read") and not info.allows("write")
    mem.close()


def test_tenants_have_their_own_cube_names_and_local_is_the_embedded_sdk(
    db_url: str, tmp_path: Path
) -> None:
    mem = open_memos(tmp_path / "h", db_url)
    mem.add("embedded fact", cube="notes")
    a, b = TenantMemos(mem, "acme"), TenantMemos(mem, "beta")
    a.add("acme fact", cube="notes")
    assert a.search("fact", cube="notes")[0].item.text == "acme fact"
    assert a.search("fact", cube="notes")[0].item.cube == "notes"
    assert [h.item.text for h in mem.search("fact", cube="notes")] == ["embedded fact"]
    assert mem.cubes() == ["notes"] and a.cubes() == ["notes"] and b.cubes() == []
    with pytest.raises(Exception, match=r"unknown cube 'notes' \(known: none yet\)"):
        b.search("fact", cube="notes")
    with pytest.raises(InvalidInputError):
        a.add("x", cube="beta/notes")  # a tenant cannot name another's stored cube
    with pytest.raises(InvalidInputError):
        TenantMemos(mem, "Bad Tenant")
    with mem.db.read() as session:
        tenants = dict(session.execute(select(Cube.name, Cube.tenant)).all())
    assert tenants == {"notes": "local", "acme/notes": "acme"}
    local = TenantMemos(mem, "local")
    assert local.search("fact", cube="notes")[0].item.text == "embedded fact"
    mem.close()


def test_export_streams_and_a_reader_that_stops_early_stops_the_writer(tmp_path: Path) -> None:
    mem = open_memos(tmp_path / "h")
    view = TenantMemos(mem, "acme")
    view.add_many([f"fact number {i}" for i in range(600)], cube="big")  # more than the queue
    lines = view.export_lines("big")
    assert json.loads(next(lines))["cubes"] == ["big"]
    assert json.loads(next(lines))["cube"] == "big"
    lines.close()
    assert not any(t.name == "memos-export" and t.is_alive() for t in threading.enumerate())
    exported = list(view.export_lines("big"))
    assert len(exported) == 601 and all(json.loads(line)["cube"] == "big" for line in exported[1:])
    mem.close()
