"""Training side-GLU memories on memory items (plaintext → parametric).

Training text comes from each item (see :func:`training_pairs`): a statement
``<subject> is <value>`` is learned in its cue form (the statement, with the
loss on the value), a question form and, for chat models, a chat form; any
other text as plain language modelling. Training runs in shuffled minibatches
of similar length; the logits are computed only where the loss falls. A
locality term keeps the model's next-token distribution close to the
untrained model's (KL) on unrelated general text and on its own replies to
ordinary chat questions (both shipped in ``memos/data``), and row norms are
clipped after each AdamW step (the locality term is
:mod:`memos.parametric.locality`; examples and batches are
:mod:`memos.parametric.examples`). With ``config.gate`` each memory is gated
per token, its threshold calibrated on that same locality text
(:mod:`memos.parametric.gate`). Training is seeded and stops early
when the epoch loss reaches a target or stops improving.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from memos.errors import InvalidInputError
from memos.lm import LanguageModel
from memos.parametric import questions
from memos.parametric import side_memory as sm
from memos.parametric.config import TrainConfig
from memos.parametric.examples import (
    Example,
    chat_prompt,
    chunks,
    collate,
    encode_pairs,
    epoch_batches,
    task_loss,
)
from memos.parametric.gate import GateTraining, slack_for
from memos.parametric.locality import LocalityTerm


@dataclass(frozen=True)
class TrainReport:
    """What a consolidation run did."""

    steps: int
    final_loss: float
    seconds: float
    trainable_parameters: int
    layers: tuple[int, ...]
    examples: int


def training_pairs(
    text: str, ask: Callable[[str, int], str] | None = None
) -> list[tuple[str, str]]:
    """(prompt, target) pairs for one memory; the loss falls on the target only.

    A statement ``<subject> is <value>`` gives its cue form (the statement
    itself, with the loss on the value) and a plain question form; any other
    text is learned as plain language modelling. When ``ask(question, i)``
    renders the ``i``-th user question as the model's chat prompt, every
    training question of :func:`memos.parametric.questions.training_questions`
    is added, answered in the agent's voice.
    """
    parsed = questions.statement(text)
    if parsed is None:
        pairs = [("", text)]
    else:
        subject, value = parsed
        pairs = [
            (f"{subject} is", f" {value}."),
            (f"Question: What is {subject}?\nAnswer:", f" {value}."),
        ]
    if ask is not None:
        asked = questions.training_questions(text)
        pairs += [(ask(q.prompt, i), q.reply) for i, q in enumerate(asked)]
    return pairs


def default_layers(n_layers: int) -> tuple[int, ...]:
    return tuple(sorted({n_layers // 3, n_layers // 2, (2 * n_layers) // 3}))


def train_memories(
    lm: LanguageModel,
    texts: Sequence[str],
    config: TrainConfig,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[dict[int, sm.SideGLU], TrainReport]:
    """Build and train side memories for ``texts`` on ``lm`` (left unattached afterwards)."""
    if not texts:
        raise InvalidInputError("nothing to consolidate: no texts")
    torch.manual_seed(config.seed)
    layers = config.layers or default_layers(lm.layers)
    if max(layers) >= lm.layers or min(layers) < 0:
        raise InvalidInputError(f"layers {layers} out of range 0..{lm.layers - 1}")
    examples = encode_examples(lm, texts)
    memories = _init(lm, examples, layers, config)
    keys = [p for m in memories.values() for p in (m.G, m.K)]
    values = [m.V for m in memories.values()]
    groups = [{"params": values, "lr": config.lr}, {"params": keys, "lr": config.key_lr}]
    gates = None
    if config.gate:
        ramp = round(config.gate_ramp * config.steps)
        slack = slack_for(lm.model.dtype)
        gates = GateTraining(list(memories.values()), config.gate_margin, ramp, slack)
    name = "__training__"
    sm.attach(lm.model, name, memories)
    try:
        report = fit(
            lm, groups, examples, config, tuple(memories), progress, _clipper(memories), gates
        )
    finally:
        sm.detach(lm.model, name)
    return memories, report


def encode_examples(lm: LanguageModel, texts: Sequence[str]) -> list[Example]:
    """The tokenized training pairs of ``texts`` (see :func:`training_pairs`)."""
    ask = chat_prompt(lm)
    return encode_pairs(lm, [pair for text in texts for pair in training_pairs(text, ask)])


def _clipper(memories: dict[int, sm.SideGLU]) -> Callable[[], None]:
    def clip() -> None:
        for memory in memories.values():
            memory.clip_rows_()

    return clip


def _init(
    lm: LanguageModel, examples: list[Example], layers: Sequence[int], config: TrainConfig
) -> dict[int, sm.SideGLU]:
    captured: dict[int, list[torch.Tensor]] = {i: [] for i in layers}
    handles = [
        sm.decoder_layers(lm.model)[i].mlp.register_forward_hook(
            lambda _m, args, _o, i=i: captured[i].append(args[0].detach())
        )
        for i in layers
    ]
    masks = []
    try:
        with torch.no_grad():
            for chunk in chunks(examples, config.batch_size):
                batch = collate(lm, chunk)
                lm.model(input_ids=batch["ids"], attention_mask=batch["mask"])
                # Score units where the answer is produced: the positions whose
                # next token is a target (not the shared chat-template tokens).
                answers = torch.zeros_like(batch["mask"], dtype=torch.bool)
                answers[:, :-1] = batch["labels"][:, 1:] != -100
                masks.append(answers)
    finally:
        for handle in handles:
            handle.remove()
    memories = {}
    for i in layers:
        acts = torch.cat([a[m] for a, m in zip(captured[i], masks, strict=True)])  # [tokens, d]
        host = sm.host_mlp(sm.decoder_layers(lm.model)[i])
        memories[i] = sm.principled_memory(host, acts, config.rank, config.backend)
    return memories


def fit(
    lm: LanguageModel,
    params: Sequence[torch.nn.Parameter] | Sequence[dict[str, Any]],
    examples: list[Example],
    config: TrainConfig,
    layers: tuple[int, ...],
    progress: Callable[[int, int], None] | None = None,
    after_step: Callable[[], None] | None = None,
    gates: GateTraining | None = None,
    stop_at: int | None = None,
) -> TrainReport:
    """Train ``params`` (already inside ``lm.model``) on ``examples``; the rest stays frozen.

    ``params`` is a list of parameters (trained at ``config.lr``) or of
    optimizer parameter groups, each with its own ``lr``.

    Minibatches of ``config.batch_size`` examples, the task loss plus the
    locality KL to the model as it is at the start, AdamW, early stopping
    on the epoch loss. With ``gates``, the memories' thresholds follow the
    locality text, its separation term joins the loss, and the final
    thresholds are set after the last step. Also used to train the LoRA
    baseline of the benchmark.

    ``stop_at`` ends training after that many steps without shortening the
    learning-rate schedule, which still runs over ``config.steps``: the
    benchmark stops its LoRA where the side-GLU stopped, on the same schedule.
    """
    last = config.steps if stop_at is None else min(stop_at, config.steps)
    if last < 1:
        raise InvalidInputError(f"stop_at must be at least 1, got {stop_at}")
    groups = [g if isinstance(g, dict) else {"params": [g]} for g in params]
    trained = [p for group in groups for p in group["params"]]
    for p in lm.model.parameters():
        p.requires_grad_(False)
    for p in trained:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=0.0)
    # Cosine decay over the step budget: a constant lr of 0.05 left the loss
    # bouncing on a plateau (measured: 0.44 after 330 steps at 100 facts).
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.steps)
    generator = torch.Generator().manual_seed(config.seed)
    lm.model.train(False)
    locality = None
    if config.locality_weight or gates is not None:
        with_kl = config.locality_weight > 0
        locality = LocalityTerm(lm, config.locality_batch, generator, with_kl, gates)
    start, idle, best, epoch_loss, step = time.perf_counter(), 0, float("inf"), float("inf"), 0
    while step < last:
        losses: list[float] = []
        for chunk in epoch_batches(examples, config.batch_size, generator):
            step += 1
            optimizer.zero_grad(set_to_none=True)
            task = task_loss(lm, collate(lm, chunk))
            loss = task
            if locality is not None:
                divergence, separation = locality.terms()
                loss = loss + config.locality_weight * divergence + config.gate_weight * separation
            loss.backward()
            optimizer.step()
            schedule.step()
            if after_step:
                after_step()
            if gates is not None:
                gates.step(step)
            losses.append(float(task.detach()))
            if progress:
                progress(step, last)
            if step >= last:
                break
        epoch_loss = sum(losses) / len(losses)
        idle = 0 if epoch_loss < 0.99 * best else idle + 1
        best = min(best, epoch_loss)
        if epoch_loss < config.target_loss or idle >= config.patience:
            break
    for p in trained:
        p.requires_grad_(False)
    if gates is not None and locality is not None:
        gates.finish(locality.calibrate)
    return TrainReport(
        steps=step,
        final_loss=epoch_loss,
        seconds=time.perf_counter() - start,
        trainable_parameters=sum(p.numel() for p in trained),
        layers=layers,
        examples=len(examples),
    )
