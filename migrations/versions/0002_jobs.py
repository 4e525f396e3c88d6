"""scheduler jobs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

One row per step of a scheduler run (planned / running / done / failed), so
that a killed run is finished by the next one.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import memos.store.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("cube_pk", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("rule", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", memos.store.models.UTCDateTime(), nullable=False),
        sa.Column("started_at", memos.store.models.UTCDateTime(), nullable=True),
        sa.Column("finished_at", memos.store.models.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["cube_pk"], ["cubes.pk"]),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("id"),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index("ix_jobs_status", ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_jobs_run_id"), ["run_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_jobs_cube_pk"), ["cube_pk"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_cube_pk"))
        batch_op.drop_index(batch_op.f("ix_jobs_run_id"))
        batch_op.drop_index("ix_jobs_status")
    op.drop_table("jobs")
