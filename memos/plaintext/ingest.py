"""Turning what callers hand us (text, chat messages, documents) into items.

Everything is validated here, before anything is stored: a bad field in the
tenth message of a batch stores none of the batch.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from memos.clock import as_utc
from memos.errors import InvalidInputError, InvalidTextError, MetadataTooLargeError
from memos.plaintext.text import check_string, chunk_text, content_hash, normalize_text
from memos.store import NewItem
from memos.store.models import Event, Item, ItemTag

DOCUMENT_MAX_CHARS = 5_000_000
#: Largest metadata dict ``add`` accepts, as compact UTF-8 JSON.
METADATA_MAX_BYTES = 64 * 1024
#: Longest value of each bounded string field: the column's length, so SQLite
#: refuses exactly what PostgreSQL would.
FIELD_LIMITS: dict[str, int] = {
    name: Item.__table__.c[column].type.length  # type: ignore[attr-defined]
    for name, column in (
        ("user_id", "user_id"),
        ("agent_id", "agent_id"),
        ("session_id", "session_id"),
        ("speaker", "speaker"),
        ("role", "role"),
        ("source", "source_kind"),
    )
}
TAG_MAX_CHARS: int = ItemTag.__table__.c.tag.type.length  # type: ignore[attr-defined]
REASON_MAX_CHARS: int = Event.__table__.c.reason.type.length  # type: ignore[attr-defined]
_CUBE_NAME = re.compile(r"^[\w.@:\-]{1,200}$")
# A tenant's cube as stored (see memos.store.cubes): "<tenant>/<name>".
_STORED_CUBE_NAME = re.compile(r"^(?:[a-z0-9][a-z0-9_\-]{0,63}/)?[\w.@:\-]{1,200}$")
TENANT_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")
ITEM_FIELDS = (
    "text",
    "metadata",
    "tags",
    "user_id",
    "agent_id",
    "source",
    "session_id",
    "speaker",
    "role",
    "event_time",
    "pinned",
    "trust",
    "importance",
)


def check_cube_name(name: Any, *, stored: bool = True) -> str:
    """A valid cube name, or ``InvalidInputError`` saying what is allowed.

    ``stored`` accepts the ``"<tenant>/<name>"`` form a tenant's cube is stored
    under; a tenant's own request passes ``stored=False``.
    """
    pattern = _STORED_CUBE_NAME if stored else _CUBE_NAME
    if not isinstance(name, str) or not pattern.match(name) or len(name) > 200:
        raise InvalidInputError(
            f"cube name {name!r} is invalid: use 1-200 letters, digits, '_', '.', '@', ':' or '-'"
        )
    return name


def new_item(
    text: Any,
    *,
    max_chars: int,
    metadata: Mapping[str, Any] | None = None,
    tags: Iterable[str] | None = None,
    user_id: str | None = None,
    agent_id: str | None = None,
    source: str = "text",
    session_id: str | None = None,
    speaker: str | None = None,
    role: str | None = None,
    event_time: datetime | str | float | None = None,
    pinned: bool = False,
    trust: float = 1.0,
    importance: float = 0.0,
) -> NewItem:
    """Validate one item's fields and return it ready to store."""
    body = normalize_text(text, max_chars)
    for name, value in (
        ("user_id", user_id),
        ("agent_id", agent_id),
        ("session_id", session_id),
        ("speaker", speaker),
        ("role", role),
        ("source", source),
    ):
        if value is not None:
            check_string(value, name, FIELD_LIMITS[name])
    check_bool(pinned, "pinned")
    check_number(trust, "trust", 0, 1)
    check_number(importance, "importance", 0, 1)
    return NewItem(
        text=body,
        content_hash=content_hash(body),
        metadata=check_metadata(metadata),
        tags=check_tags(tags),
        user_id=user_id,
        agent_id=agent_id,
        source_kind=source,
        session_id=session_id,
        speaker=speaker,
        role=role,
        event_time=parse_time(event_time, "event_time"),
        pinned=pinned,
        trust=float(trust),
        importance=float(importance),
    )


def from_mapping(entry: Any, max_chars: int, defaults: Mapping[str, Any]) -> NewItem:
    """An item from a plain string or a dict of :data:`ITEM_FIELDS`."""
    if isinstance(entry, str):
        return new_item(entry, max_chars=max_chars, **defaults)
    if not isinstance(entry, Mapping):
        raise InvalidTextError(f"each entry must be a string or a dict, got {type(entry).__name__}")
    unknown = sorted(set(entry) - set(ITEM_FIELDS))
    if unknown:
        raise InvalidInputError(f"unknown item field(s) {unknown}; allowed: {list(ITEM_FIELDS)}")
    if "text" not in entry:
        raise InvalidTextError("an item dict needs a 'text' field")
    fields = {**defaults, **entry}
    return new_item(fields.pop("text"), max_chars=max_chars, **fields)


def from_messages(
    messages: Iterable[Any], *, max_chars: int, prefix_speaker: bool, defaults: Mapping[str, Any]
) -> list[NewItem]:
    """One item per chat turn, keeping speaker, role and time.

    Each message is a dict with ``role`` and ``content`` and optionally
    ``name`` (the speaker), ``timestamp``, ``session_id`` (consecutive turns of
    one session are each other's neighbours in search) and ``metadata`` (an
    ``image_caption`` there is searchable, see :mod:`memos.plaintext.search_keys`). With
    ``prefix_speaker`` the stored text reads ``"<speaker>: <content>"``.
    """
    if isinstance(messages, str | bytes | Mapping):
        raise InvalidInputError("messages must be a list of {role, content} dicts")
    items: list[NewItem] = []
    for position, message in enumerate(messages):
        try:
            items.append(_message_item(message, position, max_chars, prefix_speaker, defaults))
        except InvalidInputError as exc:
            raise type(exc)(f"message {position}: {exc}") from None
    return items


def _message_item(
    message: Any, position: int, max_chars: int, prefix: bool, defaults: Mapping[str, Any]
) -> NewItem:
    if not isinstance(message, Mapping):
        raise InvalidInputError(
            f"expected a dict with role and content, got {type(message).__name__}"
        )
    unknown = sorted(
        set(message) - {"role", "content", "name", "timestamp", "metadata", "session_id"}
    )
    if unknown:
        raise InvalidInputError(f"unknown message field(s) {unknown}")
    role, content = message.get("role"), message.get("content")
    if not isinstance(role, str) or not role.strip():
        raise InvalidInputError("role must be a non-empty string")
    speaker = message.get("name") or role
    body = normalize_text(content)
    text = f"{speaker}: {body}" if prefix else body
    metadata = {**check_metadata(message.get("metadata")), "turn": position}
    return new_item(
        text,
        max_chars=max_chars,
        **{
            **defaults,
            "metadata": {**check_metadata(defaults.get("metadata")), **metadata},
            "source": "message",
            "speaker": speaker,
            "role": role,
            "event_time": message.get("timestamp", defaults.get("event_time")),
            "session_id": message.get("session_id", defaults.get("session_id")),
        },
    )


def from_document(
    text: Any, *, chunk_chars: int, overlap: int, max_chars: int, defaults: Mapping[str, Any]
) -> list[NewItem]:
    """Cut a long text into overlapping chunks, one item each, linked by a document id."""
    body = normalize_text(text, DOCUMENT_MAX_CHARS)
    pieces = chunk_text(body, chunk_chars, overlap)
    document_id = str(uuid.uuid4())
    base = check_metadata(defaults.get("metadata"))
    return [
        new_item(
            piece,
            max_chars=max_chars,
            **{
                **defaults,
                "source": "document",
                "metadata": {**base, "document_id": document_id, "chunk": i, "chunks": len(pieces)},
            },
        )
        for i, piece in enumerate(pieces)
    ]


def check_reason(reason: Any) -> str:
    """A change's reason (kept in its version and event) if it is storable."""
    return check_string(reason, "reason", REASON_MAX_CHARS)


def check_bool(value: Any, name: str) -> bool:
    """``value`` if it is ``True`` or ``False``."""
    if not isinstance(value, bool):
        raise InvalidInputError(f"{name} must be true or false, got {value!r}")
    return value


def check_count(value: Any, name: str, low: int, high: int = 2**31 - 1) -> int:
    """``value`` if it is an integer (not a bool) in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInputError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    return value


def check_number(value: Any, name: str, low: float, high: float = math.inf) -> float:
    """``value`` as a float if it is a finite number in ``[low, high]``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        allowed = f"[{low:g}, {high:g}]" if math.isfinite(high) else f">= {low:g}"
        raise InvalidInputError(f"{name} must be a finite number in {allowed}, got {value!r}")
    return float(value)


def check_metadata(value: Any) -> dict[str, Any]:
    """A JSON-safe copy of a metadata dict: string keys, JSON values, every string
    storable (see :func:`check_string`), at most :data:`METADATA_MAX_BYTES` as JSON."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"metadata must be a dict, got {type(value).__name__}")
    if not all(isinstance(key, str) for key in value):
        raise InvalidInputError("metadata keys must be strings")
    try:
        encoded = json.dumps(dict(value), allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidInputError(f"metadata must be JSON-serializable: {exc}") from None
    copy = json.loads(encoded)
    _check_json_strings(copy, "metadata")
    size = len(json.dumps(copy, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > METADATA_MAX_BYTES:
        raise MetadataTooLargeError(
            f"metadata is {size} bytes as JSON; the limit is {METADATA_MAX_BYTES}"
        )
    return copy


def _check_json_strings(value: Any, where: str) -> None:
    if isinstance(value, str):
        check_string(value, where)
    elif isinstance(value, list):
        for i, entry in enumerate(value):
            _check_json_strings(entry, f"{where}[{i}]")
    elif isinstance(value, dict):
        for key, entry in value.items():
            check_string(key, f"{where} key {key!r}")
            _check_json_strings(entry, f"{where}[{key!r}]")


def check_tags(value: Any) -> list[str]:
    """Sorted distinct tags; each a non-empty storable string of at most
    :data:`TAG_MAX_CHARS` characters."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Iterable) or isinstance(value, Mapping | bytes):
        raise InvalidInputError(f"tags must be a list of strings, got {type(value).__name__}")
    tags = list(value)
    for tag in tags:
        check_string(tag, f"tag {tag!r}", TAG_MAX_CHARS)
        if not tag.strip():
            raise InvalidInputError(f"tag {tag!r} must not be empty")
    return sorted({tag.strip() for tag in tags})


def parse_time(value: Any, name: str) -> datetime | None:
    """A UTC datetime from a datetime, an ISO 8601 string or a Unix timestamp."""
    if value is None:
        return None
    if isinstance(value, datetime):
        try:
            return as_utc(value)
        except OverflowError:
            raise InvalidInputError(f"{name}={value!r} is out of range in UTC") from None
    if isinstance(value, bool):
        raise InvalidInputError(f"{name} must be a datetime, ISO string or timestamp")
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            raise InvalidInputError(f"{name}={value!r} is out of range (years 1-9999)") from None
    if isinstance(value, str):
        try:
            return as_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except (ValueError, OverflowError):
            pass
    raise InvalidInputError(f"{name}={value!r} is not a datetime, ISO 8601 string or timestamp")
