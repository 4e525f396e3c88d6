"""Text validation, normalization, hashing and chunking.

Text is normalized to Unicode NFC and stripped of surrounding white space
before it is stored; the content hash is the SHA-256 of that normalized text,
so two texts that differ only there are the same memory.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Any

from memos.errors import InvalidInputError, InvalidTextError, TextTooLongError

_BREAK = re.compile(r"\s+")


def normalize_text(value: Any, max_chars: int | None = None) -> str:
    """Validate ``value`` as memory text and return it normalized.

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


def content_hash(text: str) -> str:
    """SHA-256 hex digest of already-normalized text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def chunk_text(text: str, size: int, overlap: int) -> list[str]:
    """Cut ``text`` into pieces of at most ``size`` characters sharing ``overlap``.

    Cuts fall on white space where there is some in the last fifth of a
    chunk, so words are not split when that can be avoided.
    """
    if len(text) <= size:
        return [text]
    chunks: list[str] = []
    start = 0
    while start < len(text):
        end = min(start + size, len(text))
        if end < len(text):
            end = _soft_end(text, start, end, size)
        piece = text[start:end].strip()
        if piece:
            chunks.append(piece)
        if end >= len(text):
            break
        start = max(end - overlap, start + 1)
    return chunks


def _soft_end(text: str, start: int, end: int, size: int) -> int:
    window_start = end - size // 5
    last_space = -1
    for match in _BREAK.finditer(text, window_start, end):
        last_space = match.start()
    return last_space if last_space > start else end
