"""Alembic environment: runs revisions on the connection memos hands it."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import create_engine

from memos.models import Base

# Tables the database creates itself for full-text search; not in the models.
FTS_PREFIX = "items_fts"


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Leave the full-text-search tables and index out of autogenerate comparisons."""
    if name is None:
        return True
    if type_ == "table":
        return not name.startswith(FTS_PREFIX)
    return not (type_ == "index" and name == "ix_items_fts")


def _configure(connection: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        include_name=include_name,
        compare_type=True,
    )


def run_migrations() -> None:
    """Run on the connection memos passed, or on one made from the URL."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(context.config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as conn:
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()


run_migrations()
