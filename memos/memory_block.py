"""The memory block: how memories are written into a prompt.

A block is a header line, then one ``- text`` line per memory, and it is the
system turn of the model's chat template. KV snapshots cache exactly its
prefill (:mod:`memos.activation`), plaintext context fills it at chat time
(:mod:`memos.chat`), and the parametric tier asks its questions under the bare
header, the way a chat asks once a memory has left the prompt
(:mod:`memos.parametric`). One format, so the three agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

BLOCK_HEADER = "You are a helpful assistant. What you remember about the user and the world:"


class ChatTemplate(Protocol):
    """What renders messages into the model's prompt (a loaded language model)."""

    def chat_text(self, messages: list[dict[str, str]], add_generation_prompt: bool) -> str: ...


def block_text(texts: Sequence[str]) -> str:
    """The memory block: a header line, then one ``- text`` line each."""
    return "\n".join([BLOCK_HEADER, *(f"- {text}" for text in texts)])


def prefix_messages(block: str) -> list[dict[str, str]]:
    """The block as the conversation's system turn."""
    return [{"role": "system", "content": block}]


def prefix_text(lm: ChatTemplate, block: str) -> str:
    """The templated system turn holding ``block``: the part a snapshot caches."""
    return lm.chat_text(prefix_messages(block), add_generation_prompt=False)
