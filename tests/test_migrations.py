"""Schema revisions: empty to head, no drift from the models, newer schemas refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from helpers import open_memos
from sqlalchemy import inspect, text

from memos import SchemaTooNewError
from memos.store import schema
from memos.store.db import Database
from memos.store.models import Base

EXPECTED_TABLES = {
    "cubes",
    "memory_items",
    "item_tags",
    "item_versions",
    "embeddings",
    "artifacts",
    "artifact_sources",
    "events",
    "jobs",
    "api_keys",
    "alembic_version",
}


def test_empty_database_upgrades_to_head_without_drift(db_url: str) -> None:
    db = Database(db_url)
    assert schema.status(db).current is None
    state = schema.upgrade(db)
    assert state.up_to_date and state.current == state.head
    tables = set(inspect(db.engine).get_table_names())
    assert tables >= EXPECTED_TABLES
    columns = {c["name"] for c in inspect(db.engine).get_columns("memory_items")}
    assert {"id", "text", "content_hash", "metadata", "stability", "state", "pinned"} <= columns
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn)
        assert compare_metadata(context, Base.metadata) == []
    assert schema.upgrade(db).up_to_date  # idempotent
    db.dispose()


def test_newer_schema_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    mem = open_memos(tmp_path / "h")
    mem.add("precious")
    mem.close()
    db = Database(mem.config.url)
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    with pytest.raises(SchemaTooNewError, match="newer memos"):
        open_memos(tmp_path / "h")
    with pytest.raises(SchemaTooNewError):
        schema.upgrade(db)
    with db.engine.begin() as conn:
        conn.execute(text(f"UPDATE alembic_version SET version_num = '{schema.head_revision(db)}'"))
    again = open_memos(tmp_path / "h")
    assert again.search("precious")[0].item.text == "precious"
    again.close()


def test_a_0001_database_upgrades_to_head_keeping_its_items(tmp_path: Path) -> None:
    from alembic import command

    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    command.upgrade(schema.alembic_config(db), "0001")
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO cubes (id, name, metadata, revision, created_at) "
                "VALUES ('c1', 'default', '{}', 0, '2025-01-01 00:00:00')"
            )
        )
    assert "jobs" not in inspect(db.engine).get_table_names()
    state = schema.upgrade(db)
    assert state.current == state.head != "0001"
    assert "jobs" in inspect(db.engine).get_table_names()
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT name FROM cubes")).scalar() == "default"
    db.dispose()


def test_the_fast_head_constant_matches_the_migration_scripts(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    assert schema.head_revision(db) == schema.HEAD
