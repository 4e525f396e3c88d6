"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23

The tables of the system of record.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import memos.store.models

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cubes",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("owner_id", sa.String(length=200), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", memos.store.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "embeddings",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=80), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("model", "content_hash", name="uq_embeddings"),
    )
    op.create_table(
        "artifacts",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("cube_pk", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("byte_size", sa.Integer(), nullable=False),
        sa.Column("model_fingerprint", sa.String(length=80), nullable=False),
        sa.Column("created_at", memos.store.models.UTCDateTime(), nullable=False),
        sa.Column("stale", sa.Boolean(), nullable=False),
        sa.Column("stale_reason", sa.String(length=200), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cube_pk"],
            ["cubes.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("id"),
    )
    with op.batch_alter_table("artifacts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_artifacts_cube_pk"), ["cube_pk"], unique=False)

    op.create_table(
        "events",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("at", memos.store.models.UTCDateTime(), nullable=False),
        sa.Column("cube_pk", sa.Integer(), nullable=True),
        sa.Column("item_id", sa.String(length=36), nullable=True),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("from_tier", sa.String(length=20), nullable=True),
        sa.Column("to_tier", sa.String(length=20), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cube_pk"],
            ["cubes.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_events_cube_pk"), ["cube_pk"], unique=False)
        batch_op.create_index(batch_op.f("ix_events_item_id"), ["item_id"], unique=False)

    op.create_table(
        "memory_items",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("cube_pk", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=True),
        sa.Column("agent_id", sa.String(length=200), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("source_kind", sa.String(length=40), nullable=False),
        sa.Column("session_id", sa.String(length=200), nullable=True),
        sa.Column("speaker", sa.String(length=200), nullable=True),
        sa.Column("role", sa.String(length=40), nullable=True),
        sa.Column("event_time", memos.store.models.UTCDateTime(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", memos.store.models.UTCDateTime(), nullable=False),
        sa.Column("updated_at", memos.store.models.UTCDateTime(), nullable=False),
        sa.Column("last_accessed_at", memos.store.models.UTCDateTime(), nullable=True),
        sa.Column("access_count", sa.Integer(), nullable=False),
        sa.Column("stability", sa.Float(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("pinned", sa.Boolean(), nullable=False),
        sa.Column("trust", sa.Float(), nullable=False),
        sa.Column("change_seq", sa.Integer(), nullable=False),
        sa.Column("deleted_at", memos.store.models.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["cube_pk"],
            ["cubes.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("id"),
    )
    with op.batch_alter_table("memory_items", schema=None) as batch_op:
        batch_op.create_index("ix_items_cube_change", ["cube_pk", "change_seq"], unique=False)
        batch_op.create_index("ix_items_cube_state", ["cube_pk", "state"], unique=False)
        batch_op.create_index(batch_op.f("ix_memory_items_user_id"), ["user_id"], unique=False)
        batch_op.create_index(
            "uq_items_cube_hash_live",
            ["cube_pk", "content_hash"],
            unique=True,
            sqlite_where=sa.text("state != 'deleted'"),
            postgresql_where=sa.text("state != 'deleted'"),
        )

    op.create_table(
        "artifact_sources",
        sa.Column("artifact_pk", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.String(length=36), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["artifact_pk"], ["artifacts.pk"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("artifact_pk", "item_id"),
    )
    with op.batch_alter_table("artifact_sources", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_artifact_sources_item_id"), ["item_id"], unique=False)

    op.create_table(
        "item_tags",
        sa.Column("item_pk", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["item_pk"], ["memory_items.pk"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("item_pk", "tag"),
    )
    with op.batch_alter_table("item_tags", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_item_tags_tag"), ["tag"], unique=False)

    op.create_table(
        "item_versions",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("item_pk", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("recorded_at", memos.store.models.UTCDateTime(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["item_pk"], ["memory_items.pk"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("item_pk", "version", name="uq_item_versions"),
    )


def downgrade() -> None:
    op.drop_table("item_versions")
    with op.batch_alter_table("item_tags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_item_tags_tag"))

    op.drop_table("item_tags")
    with op.batch_alter_table("artifact_sources", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_artifact_sources_item_id"))

    op.drop_table("artifact_sources")
    with op.batch_alter_table("memory_items", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_items_cube_hash_live",
            sqlite_where=sa.text("state != 'deleted'"),
            postgresql_where=sa.text("state != 'deleted'"),
        )
        batch_op.drop_index(batch_op.f("ix_memory_items_user_id"))
        batch_op.drop_index("ix_items_cube_state")
        batch_op.drop_index("ix_items_cube_change")

    op.drop_table("memory_items")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_item_id"))
        batch_op.drop_index(batch_op.f("ix_events_cube_pk"))

    op.drop_table("events")
    with op.batch_alter_table("artifacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_artifacts_cube_pk"))

    op.drop_table("artifacts")
    op.drop_table("embeddings")
    op.drop_table("cubes")
