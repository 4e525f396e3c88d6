"""A :class:`memos.filters.SearchFilter` as SQL conditions on items."""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, func, select

from memos.filters import Scalar, SearchFilter
from memos.store.models import Item, ItemTag


def filter_conditions(flt: SearchFilter, cube_pk: int) -> list[ColumnElement[bool]]:
    """SQL conditions on ``Item`` selecting what ``flt`` allows in a cube."""
    conds: list[ColumnElement[bool]] = [Item.cube_pk == cube_pk, Item.state.in_(flt.states)]
    for name in ("user_id", "agent_id", "session_id", "speaker", "role"):
        value = getattr(flt, name)
        if value is not None:
            conds.append(getattr(Item, name) == value)
    when = func.coalesce(Item.event_time, Item.created_at)
    if flt.since is not None:
        conds.append(when >= flt.since)
    if flt.until is not None:
        conds.append(when <= flt.until)
    conds.extend(_metadata_condition(key, value) for key, value in flt.metadata)
    if flt.exclude_ids:
        conds.append(Item.id.not_in(flt.exclude_ids))
    if flt.tags:
        tagged = (
            select(ItemTag.item_pk)
            .where(ItemTag.tag.in_(flt.tags))
            .group_by(ItemTag.item_pk)
            .having(func.count(ItemTag.tag) == len(flt.tags))
        )
        conds.append(Item.pk.in_(tagged))
    return conds


def filter_clause(flt: SearchFilter, cube_pk: int) -> ColumnElement[bool]:
    """All of :func:`filter_conditions` joined with AND."""
    return and_(*filter_conditions(flt, cube_pk))


def _metadata_condition(key: str, value: Scalar) -> ColumnElement[bool]:
    field = Item.meta[key]
    if isinstance(value, bool):
        return field.as_boolean() == value
    if isinstance(value, int):
        return field.as_integer() == value
    if isinstance(value, float):
        return field.as_float() == value
    return field.as_string() == value
