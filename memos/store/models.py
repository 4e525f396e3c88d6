"""The relational schema: the system of record (SQLAlchemy 2.0 ORM).

Every other tier (FAISS index, KV snapshots, adapters) is derived from these
rows and can be rebuilt from them. Schema changes go through Alembic
migrations in ``migrations/``; this module is what autogenerate compares with.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from memos.records import State
from memos.validation import LOCAL_TENANT

LIVE = "state != 'deleted'"


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC datetimes naive (portable) and hands them back timezone-aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    """Declarative base of all memos tables."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: JSON}


class Cube(Base):
    """A named bundle of memory owned by one user or agent."""

    __tablename__ = "cubes"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    # The tenant that owns the cube (see memos.store.cubes: a tenant's cubes are
    # stored under names prefixed "<tenant>/"; the embedded SDK's are "local").
    tenant: Mapped[str] = mapped_column(String(64), index=True, server_default=LOCAL_TENANT)
    owner_id: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    # Bumped (under the row lock) by every transaction that changes the cube's
    # items; derived indexes record the revision they reflect.
    revision: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Item(Base):
    """One memory item: its text (the source of truth) and everything about it."""

    __tablename__ = "memory_items"
    __table_args__ = (
        Index(
            "uq_items_cube_hash_live",
            "cube_pk",
            "content_hash",
            unique=True,
            sqlite_where=text(LIVE),
            postgresql_where=text(LIVE),
        ),
        Index("ix_items_cube_change", "cube_pk", "change_seq"),
        Index("ix_items_cube_state", "cube_pk", "state"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    cube_pk: Mapped[int] = mapped_column(ForeignKey("cubes.pk"))
    user_id: Mapped[str | None] = mapped_column(String(200), index=True)
    agent_id: Mapped[str | None] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    source_kind: Mapped[str] = mapped_column(String(40), default="text")
    session_id: Mapped[str | None] = mapped_column(String(200))
    speaker: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str | None] = mapped_column(String(40))
    event_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_accessed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    access_count: Mapped[int] = mapped_column(Integer, default=0)
    stability: Mapped[float] = mapped_column(Float, default=1.0)
    state: Mapped[str] = mapped_column(String(16), default=State.ACTIVE)
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)
    trust: Mapped[float] = mapped_column(Float, default=1.0)
    change_seq: Mapped[int] = mapped_column(Integer, default=0)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ItemTag(Base):
    """One tag of one item (the relational copy that tag filters query)."""

    __tablename__ = "item_tags"

    item_pk: Mapped[int] = mapped_column(
        ForeignKey("memory_items.pk", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(200), primary_key=True, index=True)


class ItemVersion(Base):
    """One version of an item's content, kept when the item is updated."""

    __tablename__ = "item_versions"
    __table_args__ = (UniqueConstraint("item_pk", "version", name="uq_item_versions"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_pk: Mapped[int] = mapped_column(ForeignKey("memory_items.pk", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(String(200))


class Embedding(Base):
    """A cached embedding of one content hash under one embedder fingerprint."""

    __tablename__ = "embeddings"
    __table_args__ = (UniqueConstraint("model", "content_hash", name="uq_embeddings"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(80))
    content_hash: Mapped[str] = mapped_column(String(64))
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class Artifact(Base):
    """A derived artifact of a tier (KV snapshot, adapter) and what it was built from."""

    __tablename__ = "artifacts"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    cube_pk: Mapped[int] = mapped_column(ForeignKey("cubes.pk"), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    path: Mapped[str] = mapped_column(Text)
    digest: Mapped[str] = mapped_column(String(80))  # store.files.file_digest
    byte_size: Mapped[int] = mapped_column(Integer)
    model_fingerprint: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    stale: Mapped[bool] = mapped_column(Boolean, default=False)
    stale_reason: Mapped[str | None] = mapped_column(String(200))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)


class ArtifactSource(Base):
    """One source item of an artifact, with the content hash it was built from."""

    __tablename__ = "artifact_sources"

    artifact_pk: Mapped[int] = mapped_column(
        ForeignKey("artifacts.pk", ondelete="CASCADE"), primary_key=True
    )
    item_id: Mapped[str] = mapped_column(String(36), primary_key=True, index=True)
    content_hash: Mapped[str] = mapped_column(String(64))


class Event(Base):
    """One entry of the append-only audit log: who did what, when, and why."""

    __tablename__ = "events"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    cube_pk: Mapped[int | None] = mapped_column(ForeignKey("cubes.pk"), index=True)
    item_id: Mapped[str | None] = mapped_column(String(36), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(String(200))
    from_tier: Mapped[str | None] = mapped_column(String(20))
    to_tier: Mapped[str | None] = mapped_column(String(20))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Job(Base):
    """One step of a scheduler run: planned, then running, then done or failed.

    A run writes all its steps as ``planned`` before applying any, so a run
    killed midway leaves rows the next run finishes first.
    """

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status", "status"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    run_id: Mapped[str] = mapped_column(String(36), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    cube_pk: Mapped[int | None] = mapped_column(ForeignKey("cubes.pk"), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    rule: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ApiKey(Base):
    """An API key of the service: bound to one tenant, stored only as a hash.

    The key's first characters (``prefix``) find the row; the SHA-256 of the
    whole key is compared in constant time. ``scopes`` is a comma-separated
    subset of ``read,write,admin``.
    """

    __tablename__ = "api_keys"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    scopes: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
