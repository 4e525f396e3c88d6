"""Rows to the frozen records the SDK hands back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from memos.records import MemoryRecord, MemoryVersion
from memos.store.models import (
    Cube,
    Item,
    ItemVersion,
)

#: Every stored field of an item: record (and export) name -> ``Item`` attribute.
#: The database column is named like the record field.
ITEM_FIELDS: dict[str, str] = {
    name: "meta" if name == "metadata" else name
    for name in (
        "id",
        "text",
        "content_hash",
        "metadata",
        "tags",
        "user_id",
        "agent_id",
        "source_kind",
        "session_id",
        "speaker",
        "role",
        "event_time",
        "version",
        "created_at",
        "updated_at",
        "last_accessed_at",
        "access_count",
        "stability",
        "state",
        "pinned",
        "trust",
    )
}


def item_values(item: Item) -> dict[str, Any]:
    """An ORM row's stored fields, by record name (see :data:`ITEM_FIELDS`)."""
    return {name: getattr(item, attr) for name, attr in ITEM_FIELDS.items()}


def to_record(item: Item, cube_name: str) -> MemoryRecord:
    """An immutable :class:`MemoryRecord` copy of an ORM row."""
    return _record(item_values(item), cube_name)


def record_of(session: Session, item: Item) -> MemoryRecord:
    """An item's record, with its cube's name looked up."""
    name = session.scalar(select(Cube.name).where(Cube.pk == item.cube_pk))
    return to_record(item, name or "")


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
    return _record({name: row[name] for name in ITEM_FIELDS}, cube_name)


def _record(values: dict[str, Any], cube_name: str) -> MemoryRecord:
    values["metadata"] = dict(values["metadata"] or {})
    values["tags"] = list(values["tags"] or [])
    values["pinned"] = bool(values["pinned"])
    return MemoryRecord(cube=cube_name, **values)


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
