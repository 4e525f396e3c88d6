"""Operations on the system of record, each inside a caller's session.

These functions know the tables and the rules that keep them consistent:
every change bumps its cube's revision and stamps the changed items with it
(which is how the derived indexes learn of it), records a version when content changes,
marks derived artifacts stale, and appends an event. They never commit: the
caller's transaction (``Database.write``) does.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from memos.errors import UnknownCubeError, UnknownItemError
from memos.lifecycle.retention import RetentionPolicy
from memos.records import SEARCHABLE_STATES, MemoryRecord, MemoryVersion
from memos.store.models import (
    Artifact,
    ArtifactSource,
    Cube,
    Embedding,
    Event,
    Item,
    ItemTag,
    ItemVersion,
)


@dataclass
class NewItem:
    """A validated item about to be stored (text already normalized)."""

    text: str
    content_hash: str
    metadata: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    user_id: str | None = None
    agent_id: str | None = None
    source_kind: str = "text"
    session_id: str | None = None
    speaker: str | None = None
    role: str | None = None
    event_time: datetime | None = None
    pinned: bool = False
    trust: float = 1.0
    importance: float = 0.0
    id: str | None = None


# -- cubes -----------------------------------------------------------------


def cube_by_name(session: Session, name: str) -> Cube:
    """The cube called ``name``; ``UnknownCubeError`` lists the known ones."""
    cube = session.scalar(select(Cube).where(Cube.name == name))
    if cube is None:
        known = ", ".join(cube_names(session)) or "none yet"
        raise UnknownCubeError(f"unknown cube {name!r} (known: {known})")
    return cube


def cube_names(session: Session) -> list[str]:
    return list(session.scalars(select(Cube.name).order_by(Cube.name)))


def ensure_cube(session: Session, name: str, now: datetime, owner_id: str | None = None) -> Cube:
    """The cube called ``name``, created (with an event) when missing."""
    cube = session.scalar(select(Cube).where(Cube.name == name))
    if cube is not None:
        return cube
    cube = Cube(
        id=str(uuid.uuid4()), name=name, owner_id=owner_id, meta={}, revision=0, created_at=now
    )
    session.add(cube)
    session.flush()
    log_event(session, now, "cube.create", cube_pk=cube.pk, details={"name": name})
    return cube


def bump_revision(session: Session, cube_pk: int) -> int:
    """Increment the cube's revision under its row lock and return the new value.

    The row lock orders writers of one cube, so revisions commit in order and
    an index that has seen revision N has seen every change up to N.
    """
    stmt = (
        update(Cube)
        .where(Cube.pk == cube_pk)
        .values(revision=Cube.revision + 1)
        .returning(Cube.revision)
    )
    return int(session.execute(stmt).scalar_one())


# -- items -------------------------------------------------------------------


def live_by_hash(session: Session, cube_pk: int, hashes: Iterable[str]) -> dict[str, Item]:
    """Live (not deleted) items of a cube with these content hashes."""
    wanted = list(set(hashes))
    found: dict[str, Item] = {}
    for start in range(0, len(wanted), 500):
        stmt = select(Item).where(
            Item.cube_pk == cube_pk,
            Item.content_hash.in_(wanted[start : start + 500]),
            Item.state != "deleted",
        )
        found.update({item.content_hash: item for item in session.scalars(stmt)})
    return found


def insert_items(
    session: Session,
    cube: Cube,
    items: Sequence[NewItem],
    now: datetime,
    revision: int,
    policy: RetentionPolicy,
) -> list[tuple[int, str]]:
    """Insert new items with their first version, tags and events.

    Each starts at the initial stability ``policy`` gives its importance.

    Returns the ``(pk, id)`` of each item, in order.
    """
    if not items:
        return []
    rows = [_item_row(cube.pk, item, now, revision, policy) for item in items]
    stmt = insert(Item).returning(Item.pk, Item.id, sort_by_parameter_order=True)
    keys = [(int(pk), str(item_id)) for pk, item_id in session.execute(stmt, rows)]
    session.execute(
        insert(ItemVersion),
        [
            {
                "item_pk": pk,
                "version": 1,
                "text": item.text,
                "content_hash": item.content_hash,
                "meta": item.metadata,
                "tags": item.tags,
                "recorded_at": now,
                "reason": "add",
            }
            for (pk, _), item in zip(keys, items, strict=True)
        ],
    )
    _insert_tags(session, [(pk, item.tags) for (pk, _), item in zip(keys, items, strict=True)])
    session.execute(
        insert(Event),
        [
            {
                "at": now,
                "cube_pk": cube.pk,
                "item_id": item_id,
                "kind": "add",
                "actor": item.agent_id or item.user_id,
                "reason": item.source_kind,
                "to_tier": "plaintext",
                "details": {},
            }
            for (_, item_id), item in zip(keys, items, strict=True)
        ],
    )
    return keys


def _item_row(
    cube_pk: int, item: NewItem, now: datetime, revision: int, policy: RetentionPolicy
) -> dict[str, Any]:
    return {
        "id": item.id or str(uuid.uuid4()),
        "cube_pk": cube_pk,
        "user_id": item.user_id,
        "agent_id": item.agent_id,
        "text": item.text,
        "content_hash": item.content_hash,
        "meta": item.metadata,
        "tags": item.tags,
        "source_kind": item.source_kind,
        "session_id": item.session_id,
        "speaker": item.speaker,
        "role": item.role,
        "event_time": item.event_time,
        "version": 1,
        "created_at": now,
        "updated_at": now,
        "access_count": 0,
        "stability": policy.initial_stability(item.importance),
        "state": "active",
        "pinned": item.pinned,
        "trust": item.trust,
        "change_seq": revision,
    }


def _insert_tags(session: Session, pairs: Iterable[tuple[int, list[str]]]) -> None:
    rows = [{"item_pk": pk, "tag": tag} for pk, tags in pairs for tag in tags]
    if rows:
        session.execute(insert(ItemTag), rows)


def item_by_id(session: Session, item_id: str, include_deleted: bool = True) -> Item:
    """The item with this id; ``UnknownItemError`` when there is none."""
    if not isinstance(item_id, str):
        raise UnknownItemError(f"item id must be a string, got {item_id!r}")
    item = session.scalar(select(Item).where(Item.id == item_id))
    if item is None or (item.state == "deleted" and not include_deleted):
        raise UnknownItemError(f"no memory item with id {item_id!r}")
    return item


def rewrite_item(
    session: Session, item: Item, new: NewItem, now: datetime, revision: int, reason: str
) -> None:
    """Make ``new`` the next version of ``item`` (keeping the old one in history)."""
    text_changed = new.content_hash != item.content_hash
    item.version += 1
    item.text, item.content_hash = new.text, new.content_hash
    item.meta, item.tags = new.metadata, new.tags
    item.updated_at, item.change_seq = now, revision
    for name in ("pinned", "trust", "event_time", "speaker", "role", "session_id"):
        setattr(item, name, getattr(new, name))
    session.add(
        ItemVersion(
            item_pk=item.pk,
            version=item.version,
            text=new.text,
            content_hash=new.content_hash,
            meta=new.metadata,
            tags=new.tags,
            recorded_at=now,
            reason=reason,
        )
    )
    session.query(ItemTag).filter(ItemTag.item_pk == item.pk).delete()
    _insert_tags(session, [(item.pk, new.tags)])
    if text_changed:
        mark_artifacts_stale(session, [item.id], "source item updated")
    log_event(
        session,
        now,
        "update",
        cube_pk=item.cube_pk,
        item_id=item.id,
        reason=reason,
        details={"version": item.version, "text_changed": text_changed},
    )


def set_deleted(session: Session, item: Item, now: datetime, revision: int, reason: str) -> None:
    """Soft-delete ``item``: out of search, kept (with history) until purged."""
    previous = item.state
    item.state, item.deleted_at = "deleted", now
    item.updated_at, item.change_seq = now, revision
    mark_artifacts_stale(session, [item.id], "source item deleted")
    log_event(
        session,
        now,
        "delete",
        cube_pk=item.cube_pk,
        item_id=item.id,
        reason=reason,
        details={"previous_state": previous},
    )


def set_restored(session: Session, item: Item, now: datetime, revision: int) -> str:
    """Bring back a soft-deleted, forgotten or archived item; returns its new state.

    A deleted item gets the state it had before deletion; a forgotten or
    archived one becomes active as if just recalled (its stability is kept).
    """
    previous = item.state
    if previous == "deleted":
        last = session.scalar(
            select(Event)
            .where(Event.item_id == item.id, Event.kind == "delete")
            .order_by(Event.pk.desc())
            .limit(1)
        )
        state = (last.details or {}).get("previous_state", "active") if last else "active"
    else:
        state = "active"
        item.last_accessed_at = now
    item.state, item.deleted_at = state, None
    item.updated_at, item.change_seq = now, revision
    log_event(
        session,
        now,
        "restore",
        cube_pk=item.cube_pk,
        item_id=item.id,
        details={"from": previous, "state": state},
    )
    return state


def purge_item(session: Session, item: Item, now: datetime, reason: str) -> None:
    """Remove ``item`` and its history for good (the event log keeps that it existed)."""
    mark_artifacts_stale(session, [item.id], "source item purged")
    log_event(
        session,
        now,
        "purge",
        cube_pk=item.cube_pk,
        item_id=item.id,
        reason=reason,
        details={"content_hash": item.content_hash},
    )
    session.delete(item)


def move_state(session: Session, item: Item, new: str, revisions: dict[int, int]) -> None:
    """Set ``item``'s lifecycle state; a move into or out of plain search's view
    bumps its cube's revision (once per transaction, kept in ``revisions``) and
    stamps the item, so every process's indexes catch up on it."""
    if (item.state in SEARCHABLE_STATES) != (new in SEARCHABLE_STATES):
        if item.cube_pk not in revisions:
            revisions[item.cube_pk] = bump_revision(session, item.cube_pk)
        item.change_seq = revisions[item.cube_pk]
    item.state = new


def mark_artifacts_stale(session: Session, item_ids: Sequence[str], why: str) -> int:
    """Flag every artifact built from any of ``item_ids`` as stale."""
    sources = select(ArtifactSource.artifact_pk).where(ArtifactSource.item_id.in_(item_ids))
    result = session.execute(
        update(Artifact)
        .where(Artifact.pk.in_(sources), Artifact.stale.is_(False))
        .values(stale=True, stale_reason=why)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def versions_of(session: Session, item: Item) -> list[ItemVersion]:
    return list(
        session.scalars(
            select(ItemVersion).where(ItemVersion.item_pk == item.pk).order_by(ItemVersion.version)
        )
    )


# -- embeddings --------------------------------------------------------------


def cached_vectors(session: Session, model: str, hashes: Iterable[str]) -> dict[str, np.ndarray]:
    """Stored vectors of these content hashes under embedder ``model``."""
    wanted = list(set(hashes))
    found: dict[str, np.ndarray] = {}
    for start in range(0, len(wanted), 500):
        stmt = select(Embedding.content_hash, Embedding.vector).where(
            Embedding.model == model, Embedding.content_hash.in_(wanted[start : start + 500])
        )
        found.update({h: np.frombuffer(v, dtype=np.float32) for h, v in session.execute(stmt)})
    return found


def save_vectors(session: Session, model: str, vectors: dict[str, np.ndarray]) -> None:
    """Store vectors by content hash (already stored ones are left as they are)."""
    if not vectors:
        return
    rows = [
        {
            "model": model,
            "content_hash": h,
            "dim": int(v.shape[0]),
            "vector": v.astype(np.float32).tobytes(),
        }
        for h, v in vectors.items()
    ]
    maker = sqlite_insert if session.get_bind().dialect.name == "sqlite" else pg_insert
    session.execute(
        maker(Embedding).on_conflict_do_nothing(index_elements=["model", "content_hash"]), rows
    )


def count_embedded(session: Session, cube_pk: int, model: str) -> int:
    stmt = (
        select(func.count())
        .select_from(Item)
        .join(Embedding, (Embedding.content_hash == Item.content_hash) & (Embedding.model == model))
        .where(Item.cube_pk == cube_pk, Item.state != "deleted")
    )
    return int(session.scalar(stmt) or 0)


# -- events ------------------------------------------------------------------


def log_event(
    session: Session,
    now: datetime,
    kind: str,
    *,
    cube_pk: int | None = None,
    item_id: str | None = None,
    actor: str | None = None,
    reason: str | None = None,
    from_tier: str | None = None,
    to_tier: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one event to the audit log."""
    session.add(
        Event(
            at=now,
            cube_pk=cube_pk,
            item_id=item_id,
            kind=kind,
            actor=actor,
            reason=reason,
            from_tier=from_tier,
            to_tier=to_tier,
            details=details or {},
        )
    )


@dataclass(frozen=True)
class EventSpec:
    """An event to log: what happened, when, and between which tiers."""

    at: datetime
    kind: str
    reason: str | None = None
    from_tier: str | None = None
    to_tier: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def log_spec(session: Session, spec: EventSpec, cube_pk: int | None = None) -> None:
    """Append the event ``spec`` describes."""
    log_event(
        session,
        spec.at,
        spec.kind,
        cube_pk=cube_pk,
        reason=spec.reason,
        from_tier=spec.from_tier,
        to_tier=spec.to_tier,
        details=spec.details,
    )


# -- conversion --------------------------------------------------------------


def to_record(item: Item, cube_name: str) -> MemoryRecord:
    """An immutable :class:`MemoryRecord` copy of an ORM row."""
    return MemoryRecord(
        id=item.id,
        cube=cube_name,
        text=item.text,
        content_hash=item.content_hash,
        metadata=dict(item.meta or {}),
        tags=list(item.tags or []),
        user_id=item.user_id,
        agent_id=item.agent_id,
        source_kind=item.source_kind,
        session_id=item.session_id,
        speaker=item.speaker,
        role=item.role,
        event_time=item.event_time,
        version=item.version,
        created_at=item.created_at,
        updated_at=item.updated_at,
        last_accessed_at=item.last_accessed_at,
        access_count=item.access_count,
        stability=item.stability,
        state=item.state,
        pinned=item.pinned,
        trust=item.trust,
    )


def records_by_pk(session: Session, pks: Sequence[int], cube_name: str) -> dict[int, MemoryRecord]:
    """Records of items ``pks`` read with one plain (non-ORM) query."""
    table = Item.__table__
    rows = session.execute(select(table).where(table.c.pk.in_(list(pks)))).mappings()
    return {row["pk"]: _row_record(row, cube_name) for row in rows}


@dataclass(frozen=True)
class RetentionFigures:
    """The columns retention is computed from."""

    created_at: datetime
    last_accessed_at: datetime | None
    stability: float
    pinned: bool


def _row_record(row: Any, cube_name: str) -> MemoryRecord:
    return MemoryRecord(
        id=row["id"],
        cube=cube_name,
        text=row["text"],
        content_hash=row["content_hash"],
        metadata=dict(row["metadata"] or {}),
        tags=list(row["tags"] or []),
        user_id=row["user_id"],
        agent_id=row["agent_id"],
        source_kind=row["source_kind"],
        session_id=row["session_id"],
        speaker=row["speaker"],
        role=row["role"],
        event_time=row["event_time"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        last_accessed_at=row["last_accessed_at"],
        access_count=row["access_count"],
        stability=row["stability"],
        state=row["state"],
        pinned=bool(row["pinned"]),
        trust=row["trust"],
    )


def to_version(version: ItemVersion, item_id: str) -> MemoryVersion:
    return MemoryVersion(
        item_id=item_id,
        version=version.version,
        text=version.text,
        content_hash=version.content_hash,
        metadata=dict(version.meta or {}),
        tags=list(version.tags or []),
        recorded_at=version.recorded_at,
        reason=version.reason,
    )
