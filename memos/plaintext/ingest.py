"""Turning what callers hand us (text, chat messages, documents) into items.

Everything is validated here, before anything is stored: a bad field in the
tenth message of a batch stores none of the batch.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from typing_extensions import Unpack

from memos.errors import InvalidInputError, InvalidTextError
from memos.fields import ITEM_FIELDS, UPDATE_FIELDS, ItemFields
from memos.plaintext.text import chunk_text
from memos.records import NewItem
from memos.validation import (
    FIELD_LIMITS,
    check_bool,
    check_metadata,
    check_number,
    check_optional_string,
    check_reason,
    check_string,
    check_tags,
    content_hash,
    normalize_text,
    parse_time,
)

DOCUMENT_MAX_CHARS = 5_000_000


def check_field_names(fields: Mapping[Any, Any], allowed: Iterable[str], what: str) -> None:
    """``InvalidInputError`` naming any key of ``fields`` not among ``allowed``."""
    known = set(allowed)
    unknown = sorted(repr(k) if not isinstance(k, str) else k for k in fields if k not in known)
    if unknown:
        raise InvalidInputError(f"unknown {what} field(s) {unknown}; allowed: {sorted(known)}")


def new_item(text: Any, *, max_chars: int | None, **fields: Unpack[ItemFields]) -> NewItem:
    """Validate one item's text and fields (see :class:`memos.fields.ItemFields`)
    and return it ready to store."""
    check_field_names(fields, ITEM_FIELDS[1:], "item")
    body = normalize_text(text, max_chars)
    names = {
        name: check_optional_string(fields.get(name), name, FIELD_LIMITS[name])
        for name in ("user_id", "agent_id", "session_id", "speaker", "role")
    }
    source = check_string(fields.get("source", "text"), "source", FIELD_LIMITS["source"])
    pinned = check_bool(fields.get("pinned", False), "pinned")
    return NewItem(
        text=body,
        content_hash=content_hash(body),
        metadata=check_metadata(fields.get("metadata")),
        tags=check_tags(fields.get("tags")),
        source_kind=source,
        event_time=parse_time(fields.get("event_time"), "event_time"),
        pinned=pinned,
        trust=check_number(fields.get("trust", 1.0), "trust", 0, 1),
        importance=check_number(fields.get("importance", 0.0), "importance", 0, 1),
        **names,
    )


def check_update(text: Any, changes: Mapping[Any, Any], max_chars: int | None) -> str:
    """Check an update's arguments by their own rules, before the item is looked
    up (so every door reports a bad argument the same way); returns its reason."""
    unknown = sorted(
        repr(k) if not isinstance(k, str) else k for k in changes if k not in UPDATE_FIELDS
    )
    if unknown:
        raise InvalidInputError(
            f"cannot update field(s) {unknown}; allowed: text, {', '.join(UPDATE_FIELDS)}"
        )
    fields = {k: v for k, v in changes.items() if k != "reason"}
    new_item("x" if text is None else text, max_chars=max_chars, **fields)
    return check_reason(changes.get("reason", "update"))


MESSAGE_FIELDS = ("role", "content", "name", "timestamp", "metadata", "session_id")


def from_mapping(entry: Any, max_chars: int | None, defaults: Mapping[str, Any]) -> NewItem:
    """An item from a plain string or a dict of :data:`ITEM_FIELDS`."""
    check_field_names(defaults, ITEM_FIELDS[1:], "item")
    if isinstance(entry, str):
        return new_item(entry, max_chars=max_chars, **defaults)
    if not isinstance(entry, Mapping):
        raise InvalidTextError(f"each entry must be a string or a dict, got {type(entry).__name__}")
    check_field_names(entry, ITEM_FIELDS, "item")
    if "text" not in entry:
        raise InvalidTextError("an item dict needs a 'text' field")
    fields = {**defaults, **entry}
    return new_item(fields.pop("text"), max_chars=max_chars, **fields)


def from_messages(
    messages: Iterable[Any],
    *,
    max_chars: int | None,
    prefix_speaker: bool,
    defaults: Mapping[str, Any],
) -> list[NewItem]:
    """One item per chat turn, keeping speaker, role and time.

    Each message is a dict with ``role`` and ``content`` and optionally
    ``name`` (the speaker), ``timestamp``, ``session_id`` (consecutive turns of
    one session are each other's neighbours in search) and ``metadata`` (an
    ``image_caption`` there is searchable, see :mod:`memos.plaintext.search_keys`). With
    ``prefix_speaker`` the stored text reads ``"<speaker>: <content>"``.
    """
    if isinstance(messages, str | bytes | Mapping) or not isinstance(messages, Iterable):
        raise InvalidInputError("messages must be a list of {role, content} dicts")
    check_field_names(defaults, ITEM_FIELDS[1:], "item")
    items: list[NewItem] = []
    for position, message in enumerate(messages):
        try:
            items.append(_message_item(message, position, max_chars, prefix_speaker, defaults))
        except InvalidInputError as exc:
            raise type(exc)(f"message {position}: {exc}") from None
    return items


def _message_item(
    message: Any, position: int, max_chars: int | None, prefix: bool, defaults: Mapping[str, Any]
) -> NewItem:
    if not isinstance(message, Mapping):
        raise InvalidInputError(
            f"expected a dict with role and content, got {type(message).__name__}"
        )
    check_field_names(message, MESSAGE_FIELDS, "message")
    role, content = message.get("role"), message.get("content")
    if not isinstance(role, str) or not role.strip():
        raise InvalidInputError("role must be a non-empty string")
    check_string(role, "role", FIELD_LIMITS["role"])
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
    check_field_names(defaults, ITEM_FIELDS[1:], "item")
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
