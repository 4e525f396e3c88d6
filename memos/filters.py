"""Search and list filters: which items a call may return, validated once.

A :class:`SearchFilter` is a plain value (the store turns it into SQL, see
:mod:`memos.store.filters`); every door builds one with the same rules.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from memos.clock import as_utc
from memos.errors import InvalidFilterError
from memos.records import SEARCHABLE_STATES, STATES, State
from memos.validation import ID_MAX_CHARS, check_string

_KEY = re.compile(r"[A-Za-z0-9_.\-]{1,100}")
Scalar = str | int | float | bool
MAX_EXCLUDED = 10_000


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


def _check_strings(flt: SearchFilter) -> None:
    for name in ("user_id", "agent_id", "session_id", "speaker", "role"):
        value = getattr(flt, name)
        if value is not None:
            check_string(value, f"filter {name}", error=InvalidFilterError)


def _ids(value: Any) -> tuple[str, ...]:
    try:
        ids = (value,) if isinstance(value, str) else tuple(value)
    except TypeError:
        raise InvalidFilterError("filter exclude_ids must be a list of ids") from None
    if len(ids) > MAX_EXCLUDED:
        raise InvalidFilterError(f"filter exclude_ids holds {len(ids)} ids; at most {MAX_EXCLUDED}")
    for item_id in ids:
        if not isinstance(item_id, str) or not item_id:
            raise InvalidFilterError("filter exclude_ids must be non-empty strings")
        check_string(item_id, "filter exclude_ids entry", ID_MAX_CHARS, error=InvalidFilterError)
    return tuple(sorted(set(ids)))


def _tags(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    try:
        tags = tuple(value)
    except TypeError:
        raise InvalidFilterError("filter tags must be a list of strings") from None
    if not all(isinstance(tag, str) and tag for tag in tags):
        raise InvalidFilterError("filter tags must be non-empty strings")
    for tag in tags:
        check_string(tag, "filter tag", error=InvalidFilterError)
    return tuple(sorted(set(tags)))


def _states(value: Any) -> tuple[str, ...]:
    try:
        states = (value,) if isinstance(value, str) else tuple(value)
    except TypeError:
        raise InvalidFilterError("filter states must be a list of state names") from None
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
        raise InvalidFilterError("filter metadata must be a dict of scalars") from None
    for key, val in items:
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            shown = key[:40] if isinstance(key, str) else type(key).__name__
            raise InvalidFilterError(f"filter metadata key {shown!r}: use letters, digits, _ . -")
        if not isinstance(val, str | int | float | bool):
            raise InvalidFilterError(
                f"filter metadata[{key!r}] is a {type(val).__name__}: "
                "only str, int, float or bool compare"
            )
        if isinstance(val, str):
            check_string(val, f"filter metadata[{key!r}]", error=InvalidFilterError)
        if isinstance(val, int) and not isinstance(val, bool) and not -(2**63) <= val < 2**63:
            raise InvalidFilterError(f"filter metadata[{key!r}] is out of the 64-bit range")
        if isinstance(val, float) and not math.isfinite(val):
            raise InvalidFilterError(f"filter metadata[{key!r}] must be a finite number")
    return tuple(sorted(items, key=lambda kv: kv[0]))


#: What the SDK methods take as ``filter``: a filter, a dict of its fields, or none.
FilterArg = SearchFilter | Mapping[str, Any] | None
