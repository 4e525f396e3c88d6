"""Item rows and their versions, tags and states (inside a caller's session).

Every change bumps its cube's revision and stamps the changed items with it
(which is how the derived indexes learn of it), records a version when content
changes, marks derived artifacts stale, and appends an event. Nothing here
commits: the caller's transaction (``Database.write``) does.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from memos.errors import UnknownItemError
from memos.records import SEARCHABLE_STATES, NewItem, State
from memos.retention import RetentionPolicy
from memos.store.cubes import bump_revision
from memos.store.events import log_event
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
from memos.validation import string_problem


def live_by_hash(session: Session, cube_pk: int, hashes: Iterable[str]) -> dict[str, Item]:
    """Live (not deleted) items of a cube with these content hashes."""
    wanted = list(set(hashes))
    found: dict[str, Item] = {}
    for start in range(0, len(wanted), 500):
        stmt = select(Item).where(
            Item.cube_pk == cube_pk,
            Item.content_hash.in_(wanted[start : start + 500]),
            Item.state != State.DELETED,
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
        "state": State.ACTIVE,
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
    if not isinstance(item_id, str) or string_problem(item_id):
        raise UnknownItemError(f"item id must be a valid string, got {item_id!r}")
    item = session.scalar(select(Item).where(Item.id == item_id))
    if item is None or (item.state == State.DELETED and not include_deleted):
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
    item.state, item.deleted_at = State.DELETED, now
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
    if previous == State.DELETED:
        last = session.scalar(
            select(Event)
            .where(Event.item_id == item.id, Event.kind == "delete")
            .order_by(Event.pk.desc())
            .limit(1)
        )
        state = (last.details or {}).get("previous_state", State.ACTIVE) if last else State.ACTIVE
    else:
        state = State.ACTIVE
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


def purge_item(session: Session, item: Item, now: datetime, reason: str) -> list[str]:
    """Remove ``item`` and everything that holds its text, for good.

    Its versions and tags go with it; artifacts built from it are deleted
    (rows here; the caller deletes their files, whose recorded paths are
    returned); its embeddings, of every version, are dropped unless another
    item has the same content. Only a ``purge`` event (the id, no text) remains.
    """
    hashes = {item.content_hash, *(v.content_hash for v in versions_of(session, item))}
    files = _delete_artifacts_of(session, item, now)
    log_event(session, now, "purge", cube_pk=item.cube_pk, item_id=item.id, reason=reason)
    session.delete(item)
    session.flush()
    shared = select(Item.content_hash).where(Item.content_hash.in_(hashes))
    kept = set(session.scalars(shared))
    session.execute(delete(Embedding).where(Embedding.content_hash.in_(hashes - kept)))
    return files


_ARTIFACT_TIERS = {"kv": "activation", "adapter": "parametric"}


def _delete_artifacts_of(session: Session, item: Item, now: datetime) -> list[str]:
    built = select(ArtifactSource.artifact_pk).where(ArtifactSource.item_id == item.id)
    rows = list(session.scalars(select(Artifact).where(Artifact.pk.in_(built))))
    for row in rows:
        log_event(
            session,
            now,
            f"{row.kind}.remove",
            cube_pk=row.cube_pk,
            reason="source item purged",
            from_tier=_ARTIFACT_TIERS.get(row.kind),
            to_tier="plaintext",
            details={"artifact": row.id},
        )
    session.execute(delete(Artifact).where(Artifact.pk.in_([row.pk for row in rows])))
    return [row.path for row in rows]


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
