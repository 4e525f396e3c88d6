"""Counts of a cube's rows, for ``Memos.stats`` and ``memos stats``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from memos.store.models import Item, ItemTag, ItemVersion
from memos.store.vectors import count_embedded


@dataclass(frozen=True)
class CubeCounts:
    """Items by state, versions, distinct tags, embedded items and the time span."""

    by_state: dict[str, int]
    versions: int
    tags: int
    embedded: int
    oldest: datetime | None
    newest: datetime | None


def cube_counts(session: Session, cube_pk: int, model: str) -> CubeCounts:
    """Row counts of cube ``cube_pk`` (``embedded``: items with a ``model`` vector)."""
    in_cube = Item.cube_pk == cube_pk
    by_state = dict(
        session.execute(select(Item.state, func.count()).where(in_cube).group_by(Item.state)).all()
    )
    versions = session.scalar(
        select(func.count()).select_from(ItemVersion).join(Item).where(in_cube)
    )
    tags = session.scalar(select(func.count(func.distinct(ItemTag.tag))).join(Item).where(in_cube))
    oldest, newest = session.execute(
        select(func.min(Item.created_at), func.max(Item.created_at)).where(in_cube)
    ).one()
    return CubeCounts(
        by_state={str(k): int(v) for k, v in by_state.items()},
        versions=int(versions or 0),
        tags=int(tags or 0),
        embedded=count_embedded(session, cube_pk, model),
        oldest=oldest,
        newest=newest,
    )
