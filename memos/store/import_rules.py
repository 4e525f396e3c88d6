"""The rules one line of an export must pass to be imported.

They are ``add``'s rules (:mod:`memos.validation`: text, strings,
metadata, tags, trust, lengths that fit the columns), plus those of the
figures only an import sets: a UUID id, a known state, stability finite and
> 0, counts and version numbers integers in range, and every version's hash
matching its text. A rule that fails raises :class:`FieldError` naming the
field; the importer adds the line number.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

from memos import validation as rules
from memos.errors import InvalidInputError
from memos.records import STATES
from memos.validation import check_string, content_hash, normalize_text

INT_MAX = 2**31 - 1  # PostgreSQL's INTEGER
REQUIRED = ("cube", "id", "text", "content_hash", "state", "created_at", "updated_at")
TIMES = ("event_time", "created_at", "updated_at", "last_accessed_at", "deleted_at")
_NAMES = ("user_id", "agent_id", "session_id", "speaker", "role")
_KNOWN = {*REQUIRED, *TIMES, *_NAMES, "metadata", "tags", "source_kind", "version"} | {
    "access_count",
    "stability",
    "pinned",
    "trust",
    "versions",
}


class FieldError(ValueError):
    """One field of an imported line breaks a rule."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"field {field!r}: {problem}")
        self.field = field


def check_line(data: Any, max_chars: int) -> dict[str, Any]:
    """Every field of one exported item, validated and converted for storing.

    Raises:
        FieldError: naming the first field that breaks a rule.
    """
    if not isinstance(data, dict):
        raise FieldError("(line)", f"expected a JSON object, got {type(data).__name__}")
    for name in REQUIRED:
        if name not in data:
            raise FieldError(name, "missing")
    unknown = sorted(str(k) for k in set(data) - _KNOWN)
    if unknown:
        raise FieldError(unknown[0], "not a field of a memos export")
    for name, value in data.items():
        _field(name, rules.check_json, value, "the value")
    out = {name: _field(name, check, data.get(name), max_chars) for name, check in _CHECKS.items()}
    if out["content_hash"] != content_hash(out["text"]):
        raise FieldError("content_hash", "does not match the text")
    out["versions"] = _field("versions", _versions, data.get("versions"), max_chars, out)
    return out


def _field(name: str, check: Any, *args: Any) -> Any:
    try:
        return check(*args)
    except InvalidInputError as exc:
        raise FieldError(name, str(exc)) from None


def _versions(value: Any, max_chars: int, item: dict[str, Any]) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInputError(f"must be a list, got {type(value).__name__}")
    versions = [_version(entry, max_chars, i) for i, entry in enumerate(value)]
    numbers = [v["version"] for v in versions]
    if len(set(numbers)) != len(numbers):
        raise InvalidInputError(f"version numbers repeat: {sorted(numbers)}")
    if versions and item["version"] not in numbers:
        raise InvalidInputError(f"the item's version {item['version']} is not among them")
    return versions


def _version(entry: Any, max_chars: int, position: int) -> dict[str, Any]:
    where = f"versions[{position}]"
    if not isinstance(entry, dict):
        raise InvalidInputError(f"{where} must be an object")
    for name in ("version", "text", "content_hash", "recorded_at"):
        if name not in entry:
            raise InvalidInputError(f"{where}.{name} is missing")
    text = normalize_text(entry["text"], max_chars)
    if entry["content_hash"] != content_hash(text):
        raise InvalidInputError(f"{where}.content_hash does not match its text")
    reason = entry.get("reason")
    return {
        "version": _count(entry["version"], 1, f"{where}.version"),
        "text": text,
        "content_hash": entry["content_hash"],
        "metadata": rules.check_metadata(entry.get("metadata")),
        "tags": rules.check_tags(entry.get("tags")),
        "recorded_at": _time(entry["recorded_at"], f"{where}.recorded_at", required=True),
        "reason": None if reason is None else rules.check_reason(reason),
    }


def _uuid(value: Any, _: int) -> str:
    check_string(value, "id")
    try:
        canonical = str(uuid.UUID(value))
    except ValueError:
        canonical = None
    if canonical != value:
        raise InvalidInputError(f"{value!r} is not a UUID in canonical form")
    return str(value)


def _count(value: Any, low: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= INT_MAX:
        raise InvalidInputError(f"{name} must be an integer in [{low}, {INT_MAX}], got {value!r}")
    return value


def _stability(value: Any, _: int) -> float:
    if value is None:
        return 1.0
    rules.check_number(value, "stability", 0)
    if value <= 0 or not math.isfinite(value):
        raise InvalidInputError(f"stability must be a finite number > 0, got {value!r}")
    return float(value)


def _time(value: Any, name: str, required: bool = False) -> Any:
    if required and value is None:
        raise InvalidInputError(f"{name} is required")
    return rules.parse_time(value, name)


def _state(value: Any, _: int) -> str:
    if value not in STATES:
        raise InvalidInputError(f"unknown state {value!r}; allowed: {', '.join(STATES)}")
    return str(value)


def _hash(value: Any, _: int) -> str:
    if not isinstance(value, str) or len(value) != 64:
        raise InvalidInputError("must be a 64-character SHA-256 hex digest")
    return value


def _name(limit_key: str, field: str) -> Any:
    def check(value: Any, _: int) -> str | None:
        return None if value is None else check_string(value, field, rules.FIELD_LIMITS[limit_key])

    return check


_CHECKS: dict[str, Any] = {
    "cube": lambda v, _: rules.check_cube_name(v),
    "id": _uuid,
    "text": lambda v, max_chars: normalize_text(v, max_chars),
    "content_hash": _hash,
    "metadata": lambda v, _: rules.check_metadata(v),
    "tags": lambda v, _: rules.check_tags(v),
    **{name: _name(name, name) for name in _NAMES},
    "source_kind": lambda v, _: check_string(
        "import" if v is None else v, "source_kind", rules.FIELD_LIMITS["source"]
    ),
    "event_time": lambda v, _: _time(v, "event_time"),
    "created_at": lambda v, _: _time(v, "created_at", required=True),
    "updated_at": lambda v, _: _time(v, "updated_at", required=True),
    "last_accessed_at": lambda v, _: _time(v, "last_accessed_at"),
    "deleted_at": lambda v, _: _time(v, "deleted_at"),
    "version": lambda v, _: _count(1 if v is None else v, 1, "version"),
    "access_count": lambda v, _: _count(0 if v is None else v, 0, "access_count"),
    "stability": _stability,
    "state": _state,
    "pinned": lambda v, _: rules.check_bool(bool(v) if v is None else v, "pinned"),
    "trust": lambda v, _: rules.check_number(1.0 if v is None else v, "trust", 0, 1),
}
