"""The locality term of training: the model keeps its answers where it speaks of other things.

Two pools of text written for memos and shipped in ``memos/data``: lines of
general text, and ordinary chat questions with the untrained model's own
replies. Training reads a rotating sample of each per step (the KL to the
frozen model's next-token distribution), and the memories' gates are
calibrated on them (:mod:`memos.parametric.gate`).
"""

from __future__ import annotations

from importlib import resources

import torch
from torch.nn import functional as F

from memos.lm import LanguageModel, greedy_batch
from memos.parametric import side_memory as sm
from memos.parametric.examples import (
    Example,
    chat_prompt,
    chunks,
    collate,
    encode_pairs,
    target_log_probs,
)
from memos.parametric.gate import GateTraining, recording

REPLY_TOKENS = 16  # of the model's own reply to a general question, kept by the KL
PASS_CHUNK = 16  # examples per forward of a full pass over the pools
# The model's own replies to the general questions, by (fingerprint, attached memories,
# both renderings of each question).
_REPLIES: dict[tuple[str, tuple[str, ...], bool], list[list[int]]] = {}


def general_text() -> list[str]:
    """The packaged general-text corpus (written for memos) used for locality."""
    return _packaged_lines("general_text.txt")


def general_questions() -> list[str]:
    """The packaged ordinary chat questions (written for memos) used for locality."""
    return _packaged_lines("general_questions.txt")


def _packaged_lines(name: str) -> list[str]:
    data = resources.files("memos.data").joinpath(name).read_text(encoding="utf-8")
    return [line.strip() for line in data.splitlines() if line.strip()]


class LocalityTerm:
    """The loss terms that keep the model as it was where it speaks of other things: the KL
    of the adapted model to the frozen one and, with gates, their separation term.

    Two rotating samples a step, each of ``per_step`` examples: lines of
    general text (every next token), and ordinary chat questions answered by
    the model as it is at the start (the tokens of its own reply), rendered
    the way the memories' questions are. The memories are learned as chat
    answers, and general text alone did not keep them from answering other
    questions (measured at 100 facts: 55 % of ordinary questions the base
    model got right were still right).

    With ``gates``, the same text calibrates the memories' gates: a full pass
    before training, each sample's norms during it (with the separation
    term), and :meth:`calibrate` again after it.
    """

    def __init__(
        self,
        lm: LanguageModel,
        per_step: int,
        generator: torch.Generator,
        kl: bool = True,
        gates: GateTraining | None = None,
    ) -> None:
        self.lm, self.per_step, self.generator, self.gates = lm, per_step, generator, gates
        text = encode_pairs(lm, [("", line) for line in general_text()])
        self.pools = [text, _own_replies(lm, both_ways=gates is not None)]
        self.frozen = self._full_pass(log_probs=kl)

    def calibrate(self) -> None:
        """Show the gates every locality example once (no gradients)."""
        if self.gates is not None:
            self._full_pass(log_probs=False)

    def _full_pass(self, log_probs: bool) -> list[list[torch.Tensor]] | None:
        """One forward over both pools, in chunks, without gradients: the gates (if
        any) observe every example, and with ``log_probs`` the target-token
        log-probabilities are returned per pool (the frozen model's, before training)."""
        if not log_probs and self.gates is None:
            return None
        memories = self.gates.memories if self.gates is not None else []
        decoder = self.lm.model.get_decoder()
        kept: list[list[torch.Tensor]] = [[] for _ in self.pools]
        with torch.no_grad():
            for k, pool in enumerate(self.pools):
                for n, chunk in enumerate(chunks(pool, PASS_CHUNK)):
                    with recording(memories) as norms:
                        if log_probs:
                            kept[k].extend(target_log_probs(self.lm, chunk))
                        else:
                            batch = collate(self.lm, chunk)
                            decoder(input_ids=batch["ids"], attention_mask=batch["mask"])
                    if self.gates is not None:
                        keys = [(k, n * PASS_CHUNK + row) for row in range(len(chunk))]
                        self.gates.observe(keys, [len(ids) for ids, _ in chunk], norms)
        return kept if log_probs else None

    def terms(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The sum over both samples of the mean KL per target token, and of the
        gates' separation term (0 without gates)."""
        kl = separation = torch.zeros((), device=self.lm.device)
        for k, pool in enumerate(self.pools):
            if not pool:
                continue
            picks = torch.randperm(len(pool), generator=self.generator)[: self.per_step].tolist()
            chosen = [pool[i] for i in picks]
            memories = self.gates.memories if self.gates is not None else []
            with recording(memories) as norms:
                adapted = target_log_probs(self.lm, chosen)
            if self.gates is not None:
                lengths = [len(ids) for ids, _ in chosen]
                keys = [(k, i) for i in picks]
                separation = separation + self.gates.separation(keys, lengths, norms)
            if self.frozen is not None:
                frozen = self.frozen[k]
                terms = [
                    F.kl_div(here, frozen[i], log_target=True, reduction="sum")
                    for here, i in zip(adapted, picks, strict=True)
                ]
                kl = kl + torch.stack(terms).sum() / sum(here.shape[0] for here in adapted)
        return kl, separation


def _own_replies(lm: LanguageModel, both_ways: bool) -> list[Example]:
    """The packaged general questions, each with the model's own greedy reply as its target.

    The questions are rendered the two ways a memory's questions are (bare, and
    with the memory block's header as its system turn), alternately, or with
    ``both_ways`` each question both ways. Gates are calibrated on both
    renderings of every question, since ordinary questions are asked both
    ways: at 30 facts, the same questions all rendered bare reached activation
    norms up to 1.4x the largest that the alternating pool had shown the gate.
    The replies are decoded once per model (set of attached memories and
    rendering) in a process: every later training run on it reuses them.
    """
    ask = chat_prompt(lm)
    if ask is None:
        return []
    asked = general_questions()
    if both_ways:
        renderings = [(q, i) for q in asked for i in (0, 1)]
    else:
        renderings = [(q, i) for i, q in enumerate(asked)]
    prompts = [lm.encode(ask(q, i)) for q, i in renderings]
    key = (lm.fingerprint, tuple(sorted(sm.attached(lm.model))), both_ways)
    replies = _REPLIES.get(key)
    if replies is None:
        replies = _REPLIES[key] = greedy_batch(lm, prompts, REPLY_TOKENS)
    bos = lm.tokenizer.bos_token_id
    examples = []
    for prompt, reply in zip(prompts, replies, strict=True):
        head = ([bos] if bos is not None else []) + prompt
        examples.append((head + reply, [-100] * len(head) + reply))
    return [ex for ex in examples if any(label != -100 for label in ex[1])]
