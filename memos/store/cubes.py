"""Cube rows: lookup by name, creation, and the revision every change bumps.

Tenants: a cube of tenant ``t`` is stored under the name ``"t/<name>"`` (the
embedded SDK's tenant, ``local``, keeps bare names), and its ``tenant`` column
says ``t``. The stored name is the one identity every part already keys on
(indexes, scheduler steps, job rows, artifacts, export lines), so namespacing
it keeps each of them tenant-safe without threading a tenant through; the
column is what ownership checks and listings filter on. :func:`ensure_cube`
derives the column from the name, so the two never disagree.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from memos.errors import UnknownCubeError
from memos.store.events import log_event
from memos.store.models import Cube
from memos.validation import LOCAL_TENANT

TENANT_SEPARATOR = "/"


@dataclass(frozen=True)
class CubeRef:
    """A cube as the parts outside the store hold it: its keys, stored name,
    tenant and revision when read (never a live ORM row)."""

    pk: int
    id: str
    name: str
    tenant: str
    revision: int


def ref_of(cube: Cube) -> CubeRef:
    """A cube row as a :class:`CubeRef`."""
    return CubeRef(cube.pk, cube.id, cube.name, cube.tenant, cube.revision)


def stored_name(tenant: str, name: str) -> str:
    """The name a tenant's cube ``name`` is stored under."""
    return name if tenant == LOCAL_TENANT else f"{tenant}{TENANT_SEPARATOR}{name}"


def split_name(stored: str) -> tuple[str, str]:
    """(tenant, name as the tenant sees it) of a stored cube name."""
    tenant, sep, name = stored.partition(TENANT_SEPARATOR)
    return (tenant, name) if sep else (LOCAL_TENANT, stored)


def cube_by_name(session: Session, name: str) -> Cube:
    """The cube stored as ``name``; ``UnknownCubeError`` lists its tenant's cubes."""
    cube = session.scalar(select(Cube).where(Cube.name == name))
    if cube is None:
        tenant, public = split_name(name)
        known = ", ".join(cube_names(session, tenant)) or "none yet"
        raise UnknownCubeError(f"unknown cube {public!r} (known: {known})")
    return cube


def cube_ref(session: Session, name: str) -> CubeRef:
    """The cube stored as ``name`` (see :func:`cube_by_name`) as a :class:`CubeRef`."""
    return ref_of(cube_by_name(session, name))


def cube_refs(session: Session, name: str | None = None) -> list[CubeRef]:
    """Every cube (or the one stored as ``name``), oldest first."""
    stmt = select(Cube).order_by(Cube.pk)
    if name is not None:
        stmt = stmt.where(Cube.name == name)
    return [ref_of(cube) for cube in session.scalars(stmt)]


def cube_pk_of(session: Session, name: str) -> int | None:
    """The key of the cube stored as ``name``, ``None`` when there is none."""
    return session.scalar(select(Cube.pk).where(Cube.name == name))


def cube_name_of(session: Session, cube_pk: int) -> str:
    """The stored name of the cube with key ``cube_pk``."""
    return session.scalar(select(Cube.name).where(Cube.pk == cube_pk)) or ""


def cube_revision(session: Session, cube_pk: int) -> int:
    """The cube's revision now (0 for a cube that is gone)."""
    return int(session.scalar(select(Cube.revision).where(Cube.pk == cube_pk)) or 0)


def cube_names(session: Session, tenant: str = LOCAL_TENANT) -> list[str]:
    """Names of ``tenant``'s cubes, as the tenant sees them."""
    stmt = select(Cube.name).where(Cube.tenant == tenant).order_by(Cube.name)
    return [split_name(name)[1] for name in session.scalars(stmt)]


def ensure_cube(session: Session, name: str, now: datetime, owner_id: str | None = None) -> Cube:
    """The cube called ``name``, created (with an event) when missing."""
    cube = session.scalar(select(Cube).where(Cube.name == name))
    if cube is not None:
        return cube
    cube = Cube(
        id=str(uuid.uuid4()),
        name=name,
        tenant=split_name(name)[0],
        owner_id=owner_id,
        meta={},
        revision=0,
        created_at=now,
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
