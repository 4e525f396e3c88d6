"""Export and import rows: items with every stored field and their versions.

:mod:`memos.plaintext.transfer` is the use case (files, validation, vectors);
this module reads a cube's items as export lines and stores a validated batch
of imported ones in the caller's transaction.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from memos import store
from memos.records import State
from memos.store import import_rules
from memos.store.cubes import split_name
from memos.store.db import Database
from memos.store.models import Cube, Item, ItemTag, ItemVersion


def export_cubes(db: Database, cube: str | None) -> list[str]:
    """Stored names of the cubes an export covers: ``cube``, or every one."""
    with db.read() as session:
        if cube:
            return [store.cube_by_name(session, cube).name]
        return list(session.scalars(select(Cube.name).order_by(Cube.pk)))


def cube_lines(db: Database, cube_name: str) -> Iterator[str]:
    """Every item of the cube (every state, with versions) as export JSON lines,
    read in batches."""
    with db.read() as session:
        cube = store.cube_by_name(session, cube_name)
        cube_pk = cube.pk
    last = 0
    while True:
        with db.read() as session:
            rows = session.scalars(
                select(Item)
                .where(Item.cube_pk == cube_pk, Item.pk > last)
                .order_by(Item.pk)
                .limit(500)
            ).all()
            lines = [
                json.dumps(_item_dict(session, cube_name, row), ensure_ascii=False) for row in rows
            ]
        if not rows:
            return
        last = rows[-1].pk
        yield from lines


def _item_dict(session: Session, cube_name: str, item: Item) -> dict[str, Any]:
    data: dict[str, Any] = {"cube": cube_name, **store.item_values(item)}
    data["deleted_at"] = item.deleted_at
    for name in import_rules.TIMES:
        value = getattr(item, name)
        data[name] = value.isoformat() if value else None
    data["versions"] = [
        {
            "version": v.version,
            "text": v.text,
            "content_hash": v.content_hash,
            "metadata": v.meta,
            "tags": v.tags,
            "recorded_at": v.recorded_at.isoformat(),
            "reason": v.reason,
        }
        for v in store.versions_of(session, item)
    ]
    return data


def store_batch(
    session: Session,
    *,
    cube_name: str,
    batch: list[dict[str, Any]],
    now: datetime,
    model: str,
    vectors: dict[str, np.ndarray],
) -> tuple[int, int, int]:
    """Store validated export lines into one cube: (imported, skipped, versions).

    An id the cube's tenant already holds is skipped, and so is a live text the
    cube already holds. An id that another tenant holds is imported under a
    fresh id: what is skipped never depends on another tenant's items, so an
    import tells nothing about them.
    """
    cube = store.ensure_cube(session, cube_name, now)
    tenant = split_name(cube_name)[0]
    present = store.ids_present(session, [d["id"] for d in batch])
    live = store.live_by_hash(session, cube.pk, [d["content_hash"] for d in batch])
    revision = store.bump_revision(session, cube.pk)
    imported = skipped = versions = 0
    for data in batch:
        clash = data["state"] != State.DELETED and data["content_hash"] in live
        owner = present.get(data["id"])
        if owner == tenant or clash:
            skipped += 1
            continue
        item_id = data["id"] if owner is None else str(uuid.uuid4())
        item = _item_from(data, item_id, cube.pk, revision)
        session.add(item)
        session.flush()
        for v in data["versions"] or [_first_version(data)]:
            session.add(
                ItemVersion(
                    item_pk=item.pk,
                    version=v["version"],
                    text=v["text"],
                    content_hash=v["content_hash"],
                    meta=v["metadata"],
                    tags=v["tags"],
                    recorded_at=v["recorded_at"],
                    reason=v["reason"],
                )
            )
            versions += 1
        session.add_all(ItemTag(item_pk=item.pk, tag=tag) for tag in data["tags"])
        if item.state != State.DELETED:
            live[item.content_hash] = item
        present[item_id] = tenant
        imported += 1
    store.save_vectors(session, model, vectors)
    store.log_event(
        session, now, "import", cube_pk=cube.pk, details={"imported": imported, "skipped": skipped}
    )
    return imported, skipped, versions


def _item_from(data: dict[str, Any], item_id: str, cube_pk: int, revision: int) -> Item:
    values = {attr: data[name] for name, attr in store.ITEM_FIELDS.items()}
    values["id"] = item_id
    return Item(**values, cube_pk=cube_pk, change_seq=revision, deleted_at=data["deleted_at"])


def _first_version(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": data["version"],
        "text": data["text"],
        "content_hash": data["content_hash"],
        "metadata": data["metadata"],
        "tags": data["tags"],
        "recorded_at": data["created_at"],
        "reason": "import",
    }
