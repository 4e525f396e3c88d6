"""The rules every value from a caller passes before anything is stored.

One module at ground level (it imports only errors and clock), used by every
door and every layer: the embedded SDK, the remote SDK, the HTTP schemas, the
MCP tools, the importer and the store all check with these functions, so a
value one of them accepts is one the others accept, and a bad one raises the
same typed error wherever it enters.

The rules, in the order a value meets them:

1. strings: a ``str``, valid Unicode (no lone surrogate), no NUL (PostgreSQL
   refuses it), within the column's length (:data:`FIELD_LIMITS`), so SQLite
   refuses exactly what PostgreSQL would;
2. memory text: a string by rule 1, normalized to NFC and stripped, not empty,
   at most ``max_chars``; its identity is the SHA-256 of that form;
3. JSON values (metadata, filters, import lines, MCP arguments): plain JSON
   types, finite numbers, integers within 64 bits, every string by rule 1,
   nested at most :data:`JSON_MAX_DEPTH` levels, so every stored value can be
   read back and serialized by every reader;
4. names and ids: cube and tenant names by their patterns, ids as strings by
   rule 1 of at most :data:`ID_MAX_CHARS` characters;
5. numbers, counts, flags and times by their ranges.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from memos.clock import as_utc
from memos.errors import (
    InvalidInputError,
    InvalidTextError,
    MetadataTooLargeError,
    NotFoundError,
    TextTooLongError,
)

#: The tenant of the embedded SDK and of every cube created before tenants existed.
LOCAL_TENANT = "local"
#: Longest value of each bounded string field of an item (its column's length).
FIELD_LIMITS: dict[str, int] = {
    "user_id": 200,
    "agent_id": 200,
    "session_id": 200,
    "speaker": 200,
    "role": 40,
    "source": 40,
}
TAG_MAX_CHARS = 200
REASON_MAX_CHARS = 200
CUBE_NAME_MAX_CHARS = 200
TENANT_MAX_CHARS = 64
#: Ids are UUIDs (36 characters); anything longer names nothing.
ID_MAX_CHARS = 36
#: Largest metadata dict ``add`` accepts, as compact UTF-8 JSON.
METADATA_MAX_BYTES = 64 * 1024
#: Deepest nesting of any JSON value memos accepts (metadata, filters, import
#: lines, MCP arguments). Readers serialize stored values with pydantic, whose
#: limit is 255 levels: a value deeper than that could be stored but never read.
JSON_MAX_DEPTH = 32
_INT64 = 2**63

#: A cube name as a caller gives it (``.`` and ``..`` are refused apart: they
#: would read as path segments).
CUBE_NAME_PATTERN = r"^[\w.@:\-]{1,200}$"
_CUBE_NAME = re.compile(CUBE_NAME_PATTERN)
TENANT_PATTERN = r"^[a-z0-9][a-z0-9_\-]{0,63}$"
TENANT_NAME = re.compile(TENANT_PATTERN)
# A tenant's cube as stored (see memos.store.cubes): "<tenant>/<name>".
_STORED_CUBE_NAME = re.compile(r"^(?:[a-z0-9][a-z0-9_\-]{0,63}/)?[\w.@:\-]{1,200}$")


# -- strings and text ---------------------------------------------------------------


def string_problem(value: str) -> str | None:
    """What makes ``value`` unstorable (lone surrogates, NUL), or ``None``.

    Both backends must be able to store every string: PostgreSQL refuses NUL
    and neither encodes a lone surrogate to UTF-8.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"is not valid Unicode ({exc.reason} at position {exc.start})"
    if "\x00" in value:
        return "contains a NUL character"
    return None


def check_string(
    value: Any,
    name: str,
    max_chars: int | None = None,
    error: type[InvalidInputError] = InvalidInputError,
) -> str:
    """``value`` if it is a storable string of at most ``max_chars`` characters.

    Raises:
        InvalidInputError: (or ``error``) naming ``name`` and what is wrong.
    """
    if not isinstance(value, str):
        raise error(f"{name} must be a string, got {type(value).__name__}")
    problem = string_problem(value)
    if problem:
        raise error(f"{name} {problem}")
    if max_chars is not None and len(value) > max_chars:
        raise error(f"{name} is {len(value)} characters; the limit is {max_chars}")
    return value


def normalize_text(value: Any, max_chars: int | None = None) -> str:
    """Validate ``value`` as memory text and return it normalized (NFC, stripped).

    Raises:
        InvalidTextError: not a ``str``, empty or white space only, contains a
            NUL character, or is not valid Unicode (lone surrogates).
        TextTooLongError: longer than ``max_chars`` after normalization.
    """
    if not isinstance(value, str):
        raise InvalidTextError(f"text must be a str, got {type(value).__name__}")
    problem = string_problem(value)
    if problem:
        raise InvalidTextError(f"text {problem}")
    text = unicodedata.normalize("NFC", value).strip()
    if not text:
        raise InvalidTextError("text is empty or white space only")
    if max_chars is not None and len(text) > max_chars:
        raise TextTooLongError(
            f"text is {len(text)} characters; the limit is {max_chars} "
            "(use add_document / `memos add --chunk` to split long text)"
        )
    return text


def content_hash(text: str) -> str:
    """SHA-256 hex digest of already-normalized text: a memory's identity."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_optional_string(value: Any, name: str, max_chars: int | None = None) -> str | None:
    """``None``, or ``value`` by :func:`check_string`."""
    return None if value is None else check_string(value, name, max_chars)


# -- JSON values --------------------------------------------------------------------


def check_json(
    value: Any,
    where: str,
    error: type[InvalidInputError] = InvalidInputError,
    max_depth: int = JSON_MAX_DEPTH,
) -> Any:
    """``value`` if it is plain JSON that every reader can serialize back (rule 3).

    Accepts ``None``, booleans, integers within 64 bits, finite floats,
    storable strings, lists (or tuples) and dicts with string keys, nested at
    most ``max_depth`` levels. Returns a copy with tuples as lists.
    """
    return _json(value, where, 0, error, max_depth)


def _json(
    value: Any, where: str, depth: int, error: type[InvalidInputError], max_depth: int
) -> Any:
    if depth > max_depth:
        raise error(f"{where} is nested deeper than {max_depth} levels")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not -_INT64 <= value < _INT64:
            raise error(f"{where} holds an integer outside the 64-bit range")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise error(f"{where} holds {value!r}; only finite numbers are JSON")
        return value
    if isinstance(value, str):
        return check_string(value, where, error=error)
    if isinstance(value, list | tuple):
        return [
            _json(entry, f"{where}[{i}]", depth + 1, error, max_depth)
            for i, entry in enumerate(value)
        ]
    if isinstance(value, Mapping):
        out = {}
        for key, entry in value.items():
            if not isinstance(key, str):
                raise error(f"{where} keys must be strings, got {type(key).__name__}")
            check_string(key, f"{where} key {key[:40]!r}", error=error)
            out[key] = _json(entry, f"{where}[{key[:40]!r}]", depth + 1, error, max_depth)
        return out
    raise error(f"{where} holds a {type(value).__name__}, which is not JSON")


def decode_json(text: str | bytes, where: str, error: type[InvalidInputError]) -> Any:
    """Decode one JSON document; malformed text, a number too long to read or
    nesting too deep to decode raise ``error``, never a raw error."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError, invalid UTF-8 and a number with
        # more digits than int() reads (Python's 4300-digit limit).
        raise error(f"{where} is not valid JSON: {_short(exc)}") from None


def parse_json(text: str | bytes, where: str, error: type[InvalidInputError]) -> Any:
    """Decode one JSON document and check it by rule 3 (see :func:`check_json`)."""
    return check_json(decode_json(text, where, error), where, error)


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 160 else text[:157] + "..."


def check_metadata(value: Any) -> dict[str, Any]:
    """A JSON-safe copy of a metadata dict (rule 3), at most
    :data:`METADATA_MAX_BYTES` as compact JSON."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"metadata must be a dict, got {type(value).__name__}")
    copy: dict[str, Any] = check_json(value, "metadata")
    size = len(json.dumps(copy, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > METADATA_MAX_BYTES:
        raise MetadataTooLargeError(
            f"metadata is {size} bytes as JSON; the limit is {METADATA_MAX_BYTES}"
        )
    return copy


# -- names and ids ------------------------------------------------------------------


def check_cube_name(name: Any, *, stored: bool = True) -> str:
    """A valid cube name, or ``InvalidInputError`` saying what is allowed.

    ``stored`` accepts the ``"<tenant>/<name>"`` form a tenant's cube is stored
    under; a tenant's own request passes ``stored=False``. ``.`` and ``..`` are
    never names (they would read as path segments).
    """
    pattern = _STORED_CUBE_NAME if stored else _CUBE_NAME
    if (
        not isinstance(name, str)
        or len(name) > CUBE_NAME_MAX_CHARS
        or not pattern.fullmatch(name)
        or name.rpartition("/")[2] in (".", "..")
    ):
        shown = name[:60] if isinstance(name, str) else name
        raise InvalidInputError(
            f"cube name {shown!r} is invalid: use 1-{CUBE_NAME_MAX_CHARS} letters, digits, "
            "'_', '.', '@', ':' or '-' (not '.' or '..')"
        )
    return name


def check_tenant(tenant: Any) -> str:
    """A valid tenant name (1-64 lowercase letters, digits, ``_`` or ``-``)."""
    if not isinstance(tenant, str) or not TENANT_NAME.fullmatch(tenant):
        raise InvalidInputError(
            f"tenant {tenant!r} is invalid: use 1-{TENANT_MAX_CHARS} lowercase letters, "
            "digits, '_' or '-', starting with a letter or digit"
        )
    return tenant


def check_id(value: Any, what: str, error: type[NotFoundError]) -> str:
    """``value`` as an id to look up; one no stored object could have raises
    ``error`` (a not-found error: a malformed id names nothing)."""
    if not isinstance(value, str) or string_problem(value) or not 0 < len(value) <= ID_MAX_CHARS:
        shown = value[:60] if isinstance(value, str) else value
        raise error(f"no {what} with id {shown!r}")
    return value


def check_ids(values: Any, what: str, error: type[NotFoundError]) -> list[str]:
    """A list of ids by :func:`check_id` (one string counts as a list of one)."""
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, Iterable) or isinstance(values, Mapping | bytes):
        raise InvalidInputError(f"{what} ids must be a list of strings")
    return [check_id(value, what, error) for value in values]


# -- search ----------------------------------------------------------------------------

#: Most hits one search returns.
MAX_K = 1000
SEARCH_MODES = ("hybrid", "dense", "keyword")


def check_search(k: object, mode: object) -> None:
    """``InvalidInputError`` unless ``k`` is an integer in [1, MAX_K] and ``mode`` a
    search mode."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise InvalidInputError(f"k={k!r}; allowed: an integer from 1 to {MAX_K}")
    if mode not in SEARCH_MODES:
        raise InvalidInputError(f"mode={mode!r}; allowed: {', '.join(SEARCH_MODES)}")


# -- chat turns -------------------------------------------------------------------------

#: Most turns of history a chat takes, and most characters of each turn's text.
HISTORY_MAX_TURNS = 1000
HISTORY_MAX_CHARS = 32_000


def check_history(history: Any) -> list[dict[str, str]]:
    """Earlier chat turns (``role`` user or assistant, ``content`` text), checked:
    at most :data:`HISTORY_MAX_TURNS` turns of at most :data:`HISTORY_MAX_CHARS`."""
    if isinstance(history, str | bytes | Mapping) or not isinstance(history, Iterable):
        raise InvalidInputError("history must be a list of {role, content} turns")
    turns = []
    for position, turn in enumerate(history):
        if position >= HISTORY_MAX_TURNS:
            raise InvalidInputError(f"history holds more than {HISTORY_MAX_TURNS} turns")
        if not isinstance(turn, Mapping) or turn.get("role") not in ("user", "assistant"):
            raise InvalidInputError("history turns need role 'user' or 'assistant' and content")
        if set(turn) - {"role", "content"}:
            raise InvalidInputError("history turns hold only role and content")
        content = normalize_text(turn.get("content"), HISTORY_MAX_CHARS)
        turns.append({"role": str(turn["role"]), "content": content})
    return turns


# -- numbers, flags, tags, times --------------------------------------------------------


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
        or not _finite(value)
        or not low <= value <= high
    ):
        allowed = f"[{low:g}, {high:g}]" if math.isfinite(high) else f">= {low:g}"
        raise InvalidInputError(f"{name} must be a finite number in {allowed}, got {value!r}")
    return float(value)


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


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
        check_string(tag, f"tag {str(tag)[:40]!r}", TAG_MAX_CHARS)
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
    if isinstance(value, str) and not string_problem(value):
        try:
            return as_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except (ValueError, OverflowError):
            pass
    shown = value[:60] if isinstance(value, str) else value
    raise InvalidInputError(f"{name}={shown!r} is not a datetime, ISO 8601 string or timestamp")
