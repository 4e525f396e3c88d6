"""Turning what callers hand us (text, chat messages, documents) into items.

Everything is validated here, before anything is stored: a bad field in the
tenth message of a batch stores none of the batch.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from memos.clock import as_utc
from memos.errors import InvalidInputError, InvalidTextError
from memos.store import NewItem
from memos.text import chunk_text, content_hash, normalize_text

DOCUMENT_MAX_CHARS = 5_000_000
_CUBE_NAME = re.compile(r"^[\w.@:\-]{1,200}$")
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


def check_cube_name(name: Any) -> str:
    """A valid cube name, or ``InvalidInputError`` saying what is allowed."""
    if not isinstance(name, str) or not _CUBE_NAME.match(name):
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
        if value is not None and (not isinstance(value, str) or len(value) > 200):
            raise InvalidInputError(f"{name} must be a string of at most 200 characters")
    if not isinstance(pinned, bool):
        raise InvalidInputError(f"pinned must be true or false, got {pinned!r}")
    if isinstance(trust, bool) or not isinstance(trust, int | float) or not 0 <= trust <= 1:
        raise InvalidInputError(f"trust must be a number in [0, 1], got {trust!r}")
    if (
        isinstance(importance, bool)
        or not isinstance(importance, int | float)
        or not 0 <= importance <= 1
    ):
        raise InvalidInputError(f"importance must be a number in [0, 1], got {importance!r}")
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
    ``image_caption`` there is searchable, see :mod:`memos.search_keys`). With
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


def check_metadata(value: Any) -> dict[str, Any]:
    """A JSON-safe copy of a metadata dict (string keys, JSON values)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"metadata must be a dict, got {type(value).__name__}")
    import json

    try:
        copy = json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"metadata must be JSON-serializable: {exc}") from None
    if not all(isinstance(key, str) for key in value):
        raise InvalidInputError("metadata keys must be strings")
    return copy


def check_tags(value: Any) -> list[str]:
    """Sorted distinct tags; each a non-empty string of at most 200 characters."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    tags = list(value)
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip() or len(tag) > 200:
            raise InvalidInputError(f"tag {tag!r} must be a non-empty string (<= 200 chars)")
    return sorted({tag.strip() for tag in tags})


def parse_time(value: Any, name: str) -> datetime | None:
    """A UTC datetime from a datetime, an ISO 8601 string or a Unix timestamp."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, bool):
        raise InvalidInputError(f"{name} must be a datetime, ISO string or timestamp")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, tz=timezone.utc)
    if isinstance(value, str):
        try:
            return as_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            pass
    raise InvalidInputError(f"{name}={value!r} is not a datetime, ISO 8601 string or timestamp")
