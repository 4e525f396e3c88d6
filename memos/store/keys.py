"""API key rows: stored hashed, found by prefix, revoked in place."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from memos.errors import UnknownKeyError
from memos.store.db import Database
from memos.store.models import ApiKey


@dataclass(frozen=True)
class StoredKey:
    """An API key row (its hash, never the key)."""

    id: str
    tenant: str
    name: str | None
    scopes: str
    prefix: str
    key_hash: str
    created_at: datetime
    revoked_at: datetime | None


def insert_key(db: Database, key: StoredKey) -> StoredKey:
    """Store a new key row."""

    def work(session: Session) -> StoredKey:
        session.add(
            ApiKey(
                id=key.id,
                tenant=key.tenant,
                name=key.name,
                scopes=key.scopes,
                prefix=key.prefix,
                key_hash=key.key_hash,
                created_at=key.created_at,
                revoked_at=key.revoked_at,
            )
        )
        session.flush()
        return key

    return db.write(work)


def key_rows(db: Database, tenant: str | None = None) -> list[StoredKey]:
    """Every key (of one tenant), oldest first."""
    with db.read() as session:
        stmt = select(ApiKey).order_by(ApiKey.pk)
        if tenant is not None:
            stmt = stmt.where(ApiKey.tenant == tenant)
        return [_stored(row) for row in session.scalars(stmt)]


def key_by_prefix(db: Database, prefix: str) -> StoredKey | None:
    """The key whose prefix is ``prefix``."""
    with db.read() as session:
        row = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
        return None if row is None else _stored(row)


def keys_revision(db: Database) -> tuple[int, int]:
    """(keys, revoked keys): it changes with every key made or revoked (keys are
    never deleted and a revocation is never undone)."""
    with db.read() as session:
        made, revoked = session.execute(
            select(func.count(), func.count(ApiKey.revoked_at)).select_from(ApiKey)
        ).one()
    return int(made), int(revoked)


def revoke(db: Database, key_id: str, now: datetime) -> StoredKey:
    """Mark a key revoked (kept for the audit); ``UnknownKeyError`` when missing."""

    def work(session: Session) -> StoredKey:
        row = session.scalar(select(ApiKey).where(ApiKey.id == key_id))
        if row is None:
            raise UnknownKeyError(f"no API key with id {key_id!r}")
        if row.revoked_at is None:
            row.revoked_at = now
        return _stored(row)

    return db.write(work)


def _stored(row: ApiKey) -> StoredKey:
    return StoredKey(
        row.id,
        row.tenant,
        row.name,
        row.scopes,
        row.prefix,
        row.key_hash,
        row.created_at,
        row.revoked_at,
    )
