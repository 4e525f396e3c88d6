"""artifact files recorded by digest

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

``artifacts.sha256`` becomes ``artifacts.digest`` (80 characters): new files
are recorded as ``blake3:<hex>``; the SHA-256 of files written before stays as
it is and is still checked as one (``memos.store.files.digest_matches``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("artifacts", schema=None) as batch_op:
        batch_op.alter_column(
            "sha256",
            new_column_name="digest",
            existing_type=sa.String(length=64),
            type_=sa.String(length=80),
            existing_nullable=False,
        )


def downgrade() -> None:
    # A BLAKE3 digest does not fit the old column: those files would read as
    # altered, so their rows go (the files are derived; rebuilding them is safe).
    op.execute("DELETE FROM artifacts WHERE digest LIKE 'blake3:%'")
    with op.batch_alter_table("artifacts", schema=None) as batch_op:
        batch_op.alter_column(
            "digest",
            new_column_name="sha256",
            existing_type=sa.String(length=80),
            type_=sa.String(length=64),
            existing_nullable=False,
        )
