"""Reading items: pages of a cube, filtered keys, ownership, records by id."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from memos.filters import SearchFilter
from memos.records import SEARCHABLE_STATES, MemoryRecord, State
from memos.store.conversion import to_record
from memos.store.filters import filter_clause
from memos.store.models import Cube, Item

_CHUNK = 500


def list_records(
    session: Session, cube_pk: int, cube_name: str, flt: SearchFilter, limit: int, offset: int
) -> list[MemoryRecord]:
    """Items of a cube that ``flt`` allows, newest first, one page."""
    stmt = (
        select(Item)
        .where(filter_clause(flt, cube_pk))
        .order_by(Item.created_at.desc(), Item.pk.desc())
        .limit(limit)
        .offset(offset)
    )
    return [to_record(row, cube_name) for row in session.scalars(stmt)]


def records_after(
    session: Session, cube_pk: int, cube_name: str, flt: SearchFilter, after_pk: int, batch: int
) -> list[tuple[int, MemoryRecord]]:
    """The next ``batch`` items ``flt`` allows past key ``after_pk``, oldest first,
    each with its key (to continue from)."""
    stmt = (
        select(Item)
        .where(filter_clause(flt, cube_pk), Item.pk > after_pk)
        .order_by(Item.pk)
        .limit(batch)
    )
    return [(row.pk, to_record(row, cube_name)) for row in session.scalars(stmt)]


def filtered_pks(session: Session, cube_pk: int, flt: SearchFilter) -> set[int]:
    """Keys of the cube's items ``flt`` allows."""
    return set(session.scalars(select(Item.pk).where(filter_clause(flt, cube_pk))))


def live_ids(session: Session, item_ids: Sequence[str]) -> set[str]:
    """Those of ``item_ids`` that name items not deleted."""
    found: set[str] = set()
    for start in range(0, len(item_ids), _CHUNK):
        chunk = list(item_ids[start : start + _CHUNK])
        found.update(
            session.scalars(select(Item.id).where(Item.id.in_(chunk), Item.state != State.DELETED))
        )
    return found


def searchable_records(session: Session, item_ids: Sequence[str]) -> list[MemoryRecord]:
    """The current versions of those items still searchable, in the given order."""
    rows = session.execute(
        select(Item, Cube.name)
        .join(Cube, Cube.pk == Item.cube_pk)
        .where(Item.id.in_(list(item_ids)), Item.state.in_(SEARCHABLE_STATES))
    ).all()
    found = {item.id: to_record(item, name) for item, name in rows}
    return [found[i] for i in item_ids if i in found]


def records_by_ids(session: Session, pks: Iterable[int], cube_name: str) -> list[MemoryRecord]:
    """Records of the items with these keys (ORM rows, for fresh writes)."""
    rows = session.scalars(select(Item).where(Item.pk.in_(list(pks))))
    return [to_record(row, cube_name) for row in rows]


def item_tenant(session: Session, item_id: str) -> str | None:
    """The tenant whose cube holds the item (``None`` when there is no such item)."""
    return session.scalar(
        select(Cube.tenant).join(Item, Item.cube_pk == Cube.pk).where(Item.id == item_id)
    )


def ids_in_cube(session: Session, item_ids: Sequence[str], cube_name: str) -> set[str]:
    """Those of ``item_ids`` that are items of the cube stored as ``cube_name``."""
    found: set[str] = set()
    for start in range(0, len(item_ids), _CHUNK):
        chunk = list(item_ids[start : start + _CHUNK])
        found.update(
            session.scalars(
                select(Item.id)
                .join(Cube, Cube.pk == Item.cube_pk)
                .where(Item.id.in_(chunk), Cube.name == cube_name)
            )
        )
    return found


def ids_present(session: Session, item_ids: Sequence[str]) -> dict[str, str]:
    """Those of ``item_ids`` already stored, each with its cube's tenant."""
    found: dict[str, str] = {}
    for start in range(0, len(item_ids), _CHUNK):
        chunk = list(item_ids[start : start + _CHUNK])
        rows = session.execute(
            select(Item.id, Cube.tenant)
            .join(Cube, Cube.pk == Item.cube_pk)
            .where(Item.id.in_(chunk))
        )
        found.update((item_id, tenant) for item_id, tenant in rows)
    return found
