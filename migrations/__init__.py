"""Alembic environment and revisions of the memos schema (installed as memos.migrations)."""
