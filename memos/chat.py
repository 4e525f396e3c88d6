"""Generation with memory: adapters, KV snapshots, or memories read as text.

``chat`` looks for a valid snapshot of the cube. With one, the cached prefix
(the memory block as the system turn) is restored as a fresh cache and only
the user's turn is prefilled; without one, the best memories for the message
are assembled as plaintext into the system turn and the whole prompt is
prefilled. The cube's attached adapters are on the model either way (and then
snapshots, made without them, are not used), and the memories they hold (see
:meth:`memos.parametric.tier.ParametricTier.held_items`) are left out of the
plaintext block: the weights answer for them. Decoding is greedy.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from memos.activation.snapshot import restore
from memos.lm import TextStream, greedy
from memos.memory_block import BLOCK_HEADER, prefix_messages, prefix_text
from memos.records import Reply
from memos.validation import (
    HISTORY_MAX_CHARS,
    check_bool,
    check_count,
    check_history,
    normalize_text,
)

#: Longest reply a chat decodes.
MAX_NEW_TOKENS = 4096

if TYPE_CHECKING:
    from memos.activation.tier import ActivationTier
    from memos.lm import LanguageModel
    from memos.parametric.tier import ParametricTier
    from memos.records import ContextBlock


def chat_turns(
    message: str,
    history: Sequence[Mapping[str, str]],
    max_new_tokens: int,
    use_snapshot: bool,
    instructions: str = "",
) -> list[dict[str, str]]:
    """A chat's arguments checked (before any model loads): the turns after the
    memory block, the caller's instructions first and the message last."""
    text = normalize_text(message, HISTORY_MAX_CHARS)
    check_count(max_new_tokens, "max_new_tokens", 1, MAX_NEW_TOKENS)
    check_bool(use_snapshot, "use_snapshot")
    own = normalize_text(instructions, HISTORY_MAX_CHARS) if instructions else ""
    system = [{"role": "system", "content": own}] if own else []
    return [*system, *check_history(history), {"role": "user", "content": text}]


def chat(
    lm: LanguageModel,
    activation: ActivationTier,
    parametric: ParametricTier,
    context: Callable[[str, frozenset[str]], ContextBlock],
    message: str,
    *,
    cube: str,
    history: Sequence[Mapping[str, str]] = (),
    max_new_tokens: int = 64,
    use_snapshot: bool = True,
    instructions: str = "",
    on_text: Callable[[str], None] | None = None,
) -> Reply:
    """Answer ``message`` with the cube's memories (see module docstring).

    ``context(message, leave_out)`` gives the plaintext memory block used when
    no snapshot serves the cube, without the item ids in ``leave_out``; the
    reply's ``context_items`` are the ids it held. ``instructions`` (the
    caller's own system text) come as a system turn after the memory block, so
    a snapshot of the block still serves; ``on_text`` sees the reply's text
    piece by piece as it is decoded.
    """
    turns = chat_turns(message, history, max_new_tokens, use_snapshot, instructions)
    text = turns[-1]["content"]
    # Attached adapters change the weights a snapshot's KV was computed with,
    # so with any adapter on the model the memories are read as plaintext.
    adapters = parametric.sync(cube)
    start = time.perf_counter()
    # The snapshot's use is recorded after the reply, out of the time to first token.
    found = activation.usable(cube, touch=False) if use_snapshot and not adapters else None
    context_items: list[str] = []
    if found is not None:
        info, snapshot = found
        block = activation.block_of(info.id)
        prefix_ids = snapshot.token_ids
        cache = restore(lm, snapshot)
    else:
        found_block = context(text, parametric.held_items(cube))
        lines = found_block.text.splitlines()[1:]
        block = "\n".join([BLOCK_HEADER, *lines]) if found_block.text else BLOCK_HEADER
        prefix_ids, cache = [], None
        context_items = [item.id for item in found_block.items]
    full = lm.chat_text([*prefix_messages(block), *turns], add_generation_prompt=True)
    head = prefix_text(lm, block)
    if prefix_ids and not full.startswith(head):
        raise AssertionError("chat template does not extend the cached prefix")
    new_ids = lm.encode(full[len(head) :]) if prefix_ids else lm.encode(full)
    stream = TextStream(lm, on_text) if on_text is not None else None
    output, ttft = greedy(
        lm, new_ids, cache, max_new_tokens, start, stream.token if stream else None
    )
    reply_text = lm.tokenizer.decode(output, skip_special_tokens=True).strip()
    if stream is not None:
        stream.finish(reply_text)
    if found is not None:
        activation.touch(found[0].id)
    return Reply(
        text=reply_text,
        snapshot_id=found[0].id if found else None,
        prompt_tokens=len(prefix_ids) + len(new_ids),
        cached_tokens=len(prefix_ids),
        new_tokens=len(output),
        ttft_s=ttft,
        total_s=time.perf_counter() - start,
        context_items=context_items,
        adapters=list(adapters),
    )
