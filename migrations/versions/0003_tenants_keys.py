"""tenants and API keys

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23

Each cube belongs to a tenant (existing cubes to "local", the embedded SDK's);
API keys of the service are bound to a tenant and stored as hashes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import memos.store.models

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cubes", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("tenant", sa.String(length=64), server_default="local", nullable=False)
        )
        batch_op.create_index(batch_op.f("ix_cubes_tenant"), ["tenant"], unique=False)
    op.create_table(
        "api_keys",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("scopes", sa.String(length=100), nullable=False),
        sa.Column("prefix", sa.String(length=32), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", memos.store.models.UTCDateTime(), nullable=False),
        sa.Column("revoked_at", memos.store.models.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("id"),
        sa.UniqueConstraint("prefix"),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_tenant"), ["tenant"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_tenant"))
    op.drop_table("api_keys")
    with op.batch_alter_table("cubes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cubes_tenant"))
        batch_op.drop_column("tenant")
