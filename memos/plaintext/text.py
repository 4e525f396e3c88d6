"""Cutting long text into overlapping chunks (``add_document``).

What makes text storable, its normal form and its hash are rules of
:mod:`memos.validation`.
"""

from __future__ import annotations

import re

_BREAK = re.compile(r"\s+")


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
