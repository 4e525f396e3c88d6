"""What the remote SDK sends and how it reads answers.

Arguments are checked here with the embedded SDK's own rules
(:mod:`memos.validation`, :mod:`memos.plaintext.ingest`, ``SearchFilter``)
before anything is sent, so a bad value raises the same typed error remotely
as it does in process, and only JSON the service accepts goes on the wire.
Path segments (ids, cube names) are checked and percent-quoted, so no value
can leave its segment or steer a request to another route. Answers become the
same frozen records, and error answers the same typed errors.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from memos import errors
from memos.fields import ITEM_FIELDS
from memos.filters import FilterArg, SearchFilter
from memos.plaintext import ingest
from memos.records import NewItem
from memos.validation import (
    check_cube_name,
    check_id,
    check_ids,
)

_ID = re.compile(r"[A-Za-z0-9\-]+")


def cube_segment(name: Any) -> str:
    """A cube name as one quoted path segment (checked as the tenant view checks it)."""
    return _segment(check_cube_name(name, stored=False))


def id_segment(value: Any, what: str, error: type[errors.NotFoundError]) -> str:
    """An id as one quoted path segment; one no stored object can have raises ``error``.

    Ids are UUIDs, so one holding anything but letters, digits and ``-`` names
    nothing: it is answered here, as the service would answer it, and no ``/``,
    ``%``, ``?``, ``#`` or ``.`` ever reaches a path (quoting is the second guard).
    """
    check_id(value, what, error)
    if not _ID.fullmatch(value):
        raise error(f"no {what} with id {value[:60]!r}")
    return _segment(value)


def _segment(value: str) -> str:
    quoted = quote(value, safe="")
    # "." and ".." survive quoting and would be read as path steps
    return quoted.replace(".", "%2E") if set(quoted) == {"."} else quoted


def item_body(item: NewItem) -> dict[str, Any]:
    """A validated item as the JSON body of an add (unset fields left out)."""
    body: dict[str, Any] = {
        "text": item.text,
        "metadata": item.metadata or None,
        "tags": item.tags or None,
        "user_id": item.user_id,
        "agent_id": item.agent_id,
        "source": item.source_kind,
        "session_id": item.session_id,
        "speaker": item.speaker,
        "role": item.role,
        "event_time": _iso(item.event_time),
        "pinned": item.pinned,
        "trust": item.trust,
        "importance": item.importance,
    }
    return {k: v for k, v in body.items() if v is not None}


def defaults_body(defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Item defaults (for messages and documents), validated, as JSON."""
    ingest.check_field_names(defaults, ITEM_FIELDS[1:], "item")
    checked = item_body(ingest.new_item("x", max_chars=None, **defaults))
    return {k: v for k, v in checked.items() if k in defaults}


def message_body(message: Any) -> Any:
    """A chat message as JSON (its time as an ISO string); checked by the caller."""
    if not isinstance(message, Mapping):
        return message
    out = dict(message)
    if isinstance(out.get("timestamp"), datetime | int | float) and not isinstance(
        out.get("timestamp"), bool
    ):
        out["timestamp"] = _iso(ingest.parse_time(out["timestamp"], "timestamp"))
    return out


def update_body(text: str | None, changes: Mapping[str, Any], max_chars: int) -> dict[str, Any]:
    """An update's text and changes, checked by ``update``'s rules, as JSON."""
    reason = ingest.check_update(text, changes, max_chars)
    fields = {k: v for k, v in changes.items() if k != "reason"}
    item = ingest.new_item("x" if text is None else text, max_chars=None, **fields)
    body = {k: v for k, v in item_body(item).items() if k in fields}
    for name in ("metadata", "tags"):  # an empty value clears the field: keep it
        if name in fields:
            body[name] = getattr(item, name)
    if "reason" in changes:
        body["reason"] = reason
    if text is not None:
        body["text"] = item.text
    return body


def filter_body(value: FilterArg) -> dict[str, Any] | None:
    """A filter checked by ``SearchFilter``'s rules, as JSON (``None``: no filter)."""
    if value is None:
        return None
    flt = SearchFilter.from_value(value)
    data = asdict(flt)
    data["metadata"] = dict(flt.metadata)
    data["since"], data["until"] = _iso(flt.since), _iso(flt.until)
    for name in ("tags", "states", "exclude_ids"):
        data[name] = list(data[name])
    default = asdict(SearchFilter())
    return {k: v for k, v in data.items() if v != _plain(default[k])}


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def ids_body(item_ids: Iterable[str]) -> list[str]:
    """Ids as a JSON list (each checked as the embedded SDK checks it)."""
    return check_ids(item_ids, "memory item", errors.UnknownItemError)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def error_from(response: httpx.Response) -> errors.MemosError:
    """The typed error a service answer stands for."""
    try:
        data = response.json()
        name, message = str(data["error"]), str(data["message"])
        detail = data.get("detail")
    except (ValueError, KeyError, TypeError):
        return errors.StoreError(f"HTTP {response.status_code}: {response.text[:200]}")
    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, errors.MemosError):
        return cls(message)
    if response.status_code in (400, 413, 422):
        return errors.InvalidInputError(f"{message}: {detail}" if detail else message)
    if response.status_code == 404:
        return errors.NotFoundError(message)
    return errors.StoreError(f"{name}: {message}")


def job_failure(job: Mapping[str, Any]) -> errors.MemosError:
    """The typed error a failed job recorded."""
    name, _, message = str(job.get("error")).partition(": ")
    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, errors.MemosError):
        return cls(message)
    return errors.StoreError(f"job {job.get('id')} failed: {job.get('error')}")
