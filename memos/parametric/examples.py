"""Training examples of the parametric tier: rendered, tokenized, batched, and the logits
their losses read.

An example is a pair of token ids and labels, ``-100`` outside the target, so
that every loss falls on the target tokens only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch.nn import functional as F

from memos.lm import LanguageModel
from memos.memory_block import BLOCK_HEADER, prefix_messages

Example = tuple[list[int], list[int]]  # token ids, labels (-100 outside the target)


def chat_prompt(lm: LanguageModel) -> Callable[[str, int], str] | None:
    """Renders a user question as the model's chat prompt, if it has a chat template.

    Every other question gets the memory block's header as its system turn, the
    way ``chat`` asks once the memory has left the prompt; the rest get the
    template's default, the way a bare chat asks.
    """
    if not getattr(lm.tokenizer, "chat_template", None):
        return None

    def ask(question: str, i: int) -> str:
        system = prefix_messages(BLOCK_HEADER) if i % 2 else []
        return lm.chat_text([*system, {"role": "user", "content": question}], True)

    return ask


def encode_pairs(lm: LanguageModel, pairs: Sequence[tuple[str, str]]) -> list[Example]:
    """``(prompt, target)`` pairs as examples, each after the BOS token if the model has one."""
    bos = lm.tokenizer.bos_token_id
    examples = []
    for prompt, target in pairs:
        head = ([bos] if bos is not None else []) + (lm.encode(prompt) if prompt else [])
        tail = lm.encode(target)
        examples.append((head + tail, [-100] * len(head) + tail))
    return examples


def epoch_batches(
    examples: list[Example], size: int, generator: torch.Generator
) -> list[list[Example]]:
    """Shuffled batches of similar length (little padding), in shuffled order."""
    order = torch.randperm(len(examples), generator=generator).tolist()
    order.sort(key=lambda i: len(examples[i][0]))  # stable: ties stay shuffled
    batches = list(chunks([examples[i] for i in order], size))
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def chunks(examples: list[Example], size: int) -> Iterator[list[Example]]:
    for start in range(0, len(examples), size):
        yield examples[start : start + size]


def collate(lm: LanguageModel, examples: Sequence[Example]) -> dict[str, Any]:
    """Right-padded ids, attention mask and labels."""
    width = max(len(ids) for ids, _ in examples)
    pad = lm.tokenizer.pad_token_id or 0

    def padded(rows: list[list[int]], fill: int) -> torch.Tensor:
        return torch.tensor([r + [fill] * (width - len(r)) for r in rows], device=lm.device)

    return {
        "ids": padded([ids for ids, _ in examples], pad),
        "labels": padded([labels for _, labels in examples], -100),
        "mask": padded([[1] * len(ids) for ids, _ in examples], 0),
    }


def task_loss(lm: LanguageModel, batch: dict[str, Any]) -> torch.Tensor:
    """Next-token loss on target tokens only."""
    logits, targets, _ = target_logits(lm, batch)
    return F.cross_entropy(logits.float(), targets)


def target_log_probs(lm: LanguageModel, examples: Sequence[Example]) -> list[torch.Tensor]:
    """Per example, next-token log-probabilities where the next token is a target ``[n, V]``."""
    logits, _, where = target_logits(lm, collate(lm, examples))
    return list(F.log_softmax(logits.float(), dim=-1).split(where.sum(dim=1).tolist()))


def target_logits(
    lm: LanguageModel, batch: dict[str, Any]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits ``[n, V]`` where the next token is a target, those targets ``[n]``, and
    where they are ``[B, T-1]``; the LM head runs only at those positions."""
    hidden = lm.model.get_decoder()(
        input_ids=batch["ids"], attention_mask=batch["mask"]
    ).last_hidden_state  # [B, T, d]
    targets = batch["labels"][:, 1:]
    where = targets != -100
    logits = lm.model.get_output_embeddings()(hidden[:, :-1][where])  # [n, V]
    return logits, targets[where], where
