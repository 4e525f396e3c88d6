"""Assembling memories into a prompt block for an agent loop."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from memos.errors import InvalidInputError
from memos.records import ContextBlock, MemoryRecord, SearchHit

HEADER = "Relevant memories (most relevant first):"


def approx_tokens(text: str) -> int:
    """About four characters a token: a tokenizer-free estimate for budgets."""
    return max(1, (len(text) + 3) // 4)


def format_line(item: MemoryRecord) -> str:
    """One memory as a prompt line: ``- [date] text``."""
    when = item.event_time or item.created_at
    return f"- [{when:%Y-%m-%d}] {item.text}"


def assemble_context(
    hits: Sequence[SearchHit], budget_tokens: int, count_tokens: Callable[[str], int]
) -> ContextBlock:
    """Greedily take hits in score order while the block stays within the budget.

    A memory too long for what is left is skipped, and shorter ones after it
    may still fit. An empty block (no hits, or none fits) has empty text.
    """
    lines: list[str] = []
    items: list[MemoryRecord] = []
    used = count_tokens(HEADER)
    for hit in hits:
        line = format_line(hit.item)
        cost = count_tokens(line)
        if used + cost > budget_tokens:
            continue
        lines.append(line)
        items.append(hit.item)
        used += cost
    if not items:
        return ContextBlock(text="", items=[], tokens=0, budget_tokens=budget_tokens)
    return ContextBlock(
        text="\n".join([HEADER, *lines]), items=items, tokens=used, budget_tokens=budget_tokens
    )


def check_budget(value: object) -> int:
    """A context budget: an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"budget_tokens={value!r}; allowed: an integer >= 1")
    return value
