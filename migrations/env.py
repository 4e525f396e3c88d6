"""Alembic environment: runs revisions on the connection memos hands it."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import create_engine

from memos.store.models import Base


def _configure(connection: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
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
