"""Cube rows: lookup by name, creation, and the revision every change bumps."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from memos.errors import UnknownCubeError
from memos.store.events import log_event
from memos.store.models import (
    Cube,
)


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
