"""Search and list filters: validated once, then turned into SQL conditions."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select

from memos.clock import as_utc
from memos.errors import InvalidFilterError
from memos.plaintext.text import check_string
from memos.records import SEARCHABLE_STATES, STATES, State
from memos.store.models import Item, ItemTag

_KEY = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")
Scalar = str | int | float | bool


@dataclass(frozen=True)
class SearchFilter:
    """Which items a search or listing may return.

    Attributes:
        user_id, agent_id, session_id, speaker, role: exact matches.
        tags: the item must carry every one of these tags.
        states: lifecycle states allowed; default ``active``, ``warm``, ``cold``
            (archived and forgotten only when asked; deleted never).
        since, until: bounds (inclusive) on when the memory happened: its
            event time, or its creation time when it has none.
        metadata: metadata keys that must equal these scalar values.
        exclude_ids: item ids to leave out (a chat leaves out what its
            attached adapters hold).
    """

    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    speaker: str | None = None
    role: str | None = None
    tags: tuple[str, ...] = ()
    states: tuple[str, ...] = SEARCHABLE_STATES
    since: datetime | None = None
    until: datetime | None = None
    metadata: tuple[tuple[str, Scalar], ...] = ()
    exclude_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_strings(self)
        object.__setattr__(self, "tags", _tags(self.tags))
        object.__setattr__(self, "states", _states(self.states))
        object.__setattr__(self, "since", _when("since", self.since))
        object.__setattr__(self, "until", _when("until", self.until))
        if self.since and self.until and self.since > self.until:
            raise InvalidFilterError(f"since ({self.since}) is after until ({self.until})")
        object.__setattr__(self, "metadata", _metadata(self.metadata))
        object.__setattr__(self, "exclude_ids", _ids(self.exclude_ids))

    @classmethod
    def from_value(cls, value: SearchFilter | Mapping[str, Any] | None) -> SearchFilter:
        """Accept a filter, a plain dict of its fields, or ``None`` (the default)."""
        if value is None:
            return cls()
        if isinstance(value, SearchFilter):
            return value
        if not isinstance(value, Mapping):
            raise InvalidFilterError(f"filter must be a dict or SearchFilter, got {type(value)}")
        allowed = {f.name for f in fields(cls)}
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise InvalidFilterError(
                f"unknown filter field(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(sorted(allowed))}"
            )
        return cls(**dict(value))

    def conditions(self, cube_pk: int) -> list[ColumnElement[bool]]:
        """SQL conditions on ``Item`` selecting what this filter allows in a cube."""
        conds: list[ColumnElement[bool]] = [Item.cube_pk == cube_pk, Item.state.in_(self.states)]
        for name in ("user_id", "agent_id", "session_id", "speaker", "role"):
            value = getattr(self, name)
            if value is not None:
                conds.append(getattr(Item, name) == value)
        when = func.coalesce(Item.event_time, Item.created_at)
        if self.since is not None:
            conds.append(when >= self.since)
        if self.until is not None:
            conds.append(when <= self.until)
        conds.extend(_metadata_condition(key, value) for key, value in self.metadata)
        if self.exclude_ids:
            conds.append(Item.id.not_in(self.exclude_ids))
        if self.tags:
            tagged = (
                select(ItemTag.item_pk)
                .where(ItemTag.tag.in_(self.tags))
                .group_by(ItemTag.item_pk)
                .having(func.count(ItemTag.tag) == len(self.tags))
            )
            conds.append(Item.pk.in_(tagged))
        return conds

    def where(self, cube_pk: int) -> ColumnElement[bool]:
        """All of :meth:`conditions` joined with AND."""
        return and_(*self.conditions(cube_pk))


def _check_strings(flt: SearchFilter) -> None:
    for name in ("user_id", "agent_id", "session_id", "speaker", "role"):
        value = getattr(flt, name)
        if value is not None:
            check_string(value, f"filter {name}", error=InvalidFilterError)


def _ids(value: Any) -> tuple[str, ...]:
    try:
        ids = (value,) if isinstance(value, str) else tuple(value)
    except TypeError:
        raise InvalidFilterError(f"filter exclude_ids must be a list, got {value!r}") from None
    if not all(isinstance(i, str) and i for i in ids):
        raise InvalidFilterError(f"filter exclude_ids must be non-empty strings, got {value!r}")
    return tuple(sorted(set(ids)))


def _tags(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    try:
        tags = tuple(value)
    except TypeError:
        raise InvalidFilterError(f"filter tags must be a list of strings, got {value!r}") from None
    if not all(isinstance(tag, str) and tag for tag in tags):
        raise InvalidFilterError(f"filter tags must be non-empty strings, got {value!r}")
    for tag in tags:
        check_string(tag, "filter tag", error=InvalidFilterError)
    return tuple(sorted(set(tags)))


def _states(value: Any) -> tuple[str, ...]:
    states = (value,) if isinstance(value, str) else tuple(value)
    bad = [s for s in states if s not in STATES or s == State.DELETED]
    if bad or not states:
        allowed = ", ".join(s for s in STATES if s != State.DELETED)
        raise InvalidFilterError(f"filter states {list(states)!r} invalid; allowed: {allowed}")
    return tuple(dict.fromkeys(states))


def _when(name: str, value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidFilterError(
                f"filter {name}={value!r} is not an ISO 8601 date or datetime"
            ) from None
    if not isinstance(value, datetime):
        raise InvalidFilterError(f"filter {name} must be a datetime, got {value!r}")
    try:
        return as_utc(value)
    except OverflowError:
        raise InvalidFilterError(f"filter {name}={value!r} is out of range in UTC") from None


def _metadata(value: Any) -> tuple[tuple[str, Scalar], ...]:
    pairs = value.items() if isinstance(value, Mapping) else value
    try:
        items = [(k, v) for k, v in pairs]
    except (TypeError, ValueError):
        raise InvalidFilterError(f"filter metadata must be a dict, got {value!r}") from None
    for key, val in items:
        if not isinstance(key, str) or not _KEY.match(key):
            raise InvalidFilterError(f"filter metadata key {key!r}: use letters, digits, _ . -")
        if not isinstance(val, str | int | float | bool):
            raise InvalidFilterError(
                f"filter metadata[{key!r}]={val!r}: only str, int, float or bool compare"
            )
        if isinstance(val, str):
            check_string(val, f"filter metadata[{key!r}]", error=InvalidFilterError)
        if isinstance(val, int) and not -(2**63) <= val < 2**63:
            raise InvalidFilterError(f"filter metadata[{key!r}]={val}: out of 64-bit range")
    return tuple(sorted(items, key=lambda kv: kv[0]))


def _metadata_condition(key: str, value: Scalar) -> ColumnElement[bool]:
    field = Item.meta[key]
    if isinstance(value, bool):
        return field.as_boolean() == value
    if isinstance(value, int):
        return field.as_integer() == value
    if isinstance(value, float):
        return field.as_float() == value
    return field.as_string() == value
