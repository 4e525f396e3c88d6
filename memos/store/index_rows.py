"""What the derived search indexes are built and caught up from.

The dense and keyword indexes (:mod:`memos.plaintext.indexes`) hold item keys
(``pk``); these reads give them the rows to key and the cached vectors to load,
selected by cube, by change stamp past a revision, or by key.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from memos.records import State
from memos.store.models import Embedding, Item


@dataclass(frozen=True)
class IndexRow:
    """The fields of one item that its keyword key and placement are made from."""

    pk: int
    cube_pk: int
    state: str
    text: str
    speaker: str | None
    event_time: datetime | None
    meta: dict[str, Any]
    session_id: str | None


@dataclass(frozen=True)
class Turn:
    """One item of a session, for finding the question a turn answers."""

    pk: int
    cube_pk: int
    session_id: str | None
    text: str
    speaker: str | None


def index_rows(
    session: Session,
    *,
    cube_pk: int | None = None,
    changed_since: int | None = None,
    pks: Collection[int] | None = None,
    live_only: bool = False,
) -> list[IndexRow]:
    """Items of a cube (those stamped past ``changed_since``, or with these keys)."""
    stmt = select(
        Item.pk,
        Item.cube_pk,
        Item.state,
        Item.text,
        Item.speaker,
        Item.event_time,
        Item.meta,
        Item.session_id,
    )
    if cube_pk is not None:
        stmt = stmt.where(Item.cube_pk == cube_pk)
    if changed_since is not None:
        stmt = stmt.where(Item.change_seq > changed_since)
    if pks is not None:
        stmt = stmt.where(Item.pk.in_(list(pks)))
    if live_only:
        stmt = stmt.where(Item.state != State.DELETED)
    return [
        IndexRow(int(pk), cube, state, text, speaker, when, dict(meta or {}), sid)
        for pk, cube, state, text, speaker, when, meta, sid in session.execute(stmt)
    ]


def session_turns(session: Session, sessions: Iterable[tuple[int, str]]) -> list[Turn]:
    """Live items of these ``(cube pk, session id)`` sessions, in key order."""
    pairs = set(sessions)
    if not pairs:
        return []
    rows = session.execute(
        select(Item.pk, Item.cube_pk, Item.session_id, Item.text, Item.speaker).where(
            Item.cube_pk.in_({cube for cube, _ in pairs}),
            Item.session_id.in_({sid for _, sid in pairs}),
            Item.state != State.DELETED,
        )
    ).all()
    return [
        Turn(int(pk), cube, sid, text, speaker) for pk, cube, sid, text, speaker in sorted(rows)
    ]


def live_pks(session: Session, cube_pk: int) -> list[int]:
    """Keys of the cube's items that are not deleted."""
    stmt = select(Item.pk).where(Item.cube_pk == cube_pk, Item.state != State.DELETED)
    return list(session.scalars(stmt))


def stored_pks(session: Session, cube_pk: int) -> set[int]:
    """Keys of every item of the cube (deleted ones too: only a purge removes one)."""
    return set(session.scalars(select(Item.pk).where(Item.cube_pk == cube_pk)))


def vector_rows(
    session: Session, pks: Collection[int], model: str
) -> list[tuple[int, str, str, bytes | None]]:
    """``(pk, content hash, text, cached vector bytes or None)`` of these items."""
    rows = session.execute(
        select(Item.pk, Item.content_hash, Item.text, Embedding.vector)
        .outerjoin(
            Embedding,
            (Embedding.content_hash == Item.content_hash) & (Embedding.model == model),
        )
        .where(Item.pk.in_(list(pks)))
    ).all()
    return [(int(pk), h, text, vector) for pk, h, text, vector in rows]
