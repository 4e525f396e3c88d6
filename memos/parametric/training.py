"""Training side-GLU memories on memory items (plaintext → parametric).

Training text comes from each item (see :func:`training_pairs`): a statement
``<subject> is <value>`` is learned in its cue form (the statement, with the
loss on the value), a question form and, for chat models, a chat form; any
other text as plain language modelling. Training runs in shuffled minibatches
of similar length; the logits are computed only where the loss falls. A
locality term keeps the model's next-token distribution close to the
untrained model's (KL) on unrelated general text and on its own replies to
ordinary chat questions (both shipped in ``memos/data``), and row norms are
clipped after each AdamW step. Training is seeded and stops early
when the epoch loss reaches a target or stops improving.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import torch
from torch.nn import functional as F

from memos.activation.tier import BLOCK_HEADER, prefix_messages
from memos.errors import InvalidInputError
from memos.lm import LanguageModel
from memos.parametric import questions
from memos.parametric import side_memory as sm
from memos.parametric.config import TrainConfig

Example = tuple[list[int], list[int]]  # token ids, labels (-100 outside the target)
LOCALITY_REPLY_TOKENS = 16  # of the model's own reply to a general question, kept by the KL
# The model's own replies to the general questions, by (fingerprint, attached memories).
_REPLIES: dict[tuple[str, tuple[str, ...]], list[list[int]]] = {}


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


def general_text() -> list[str]:
    """The packaged general-text corpus (written for memos) used for locality."""
    return _packaged_lines("general_text.txt")


def general_questions() -> list[str]:
    """The packaged ordinary chat questions (written for memos) used for locality."""
    return _packaged_lines("general_questions.txt")


def _packaged_lines(name: str) -> list[str]:
    data = resources.files("memos.data").joinpath(name).read_text(encoding="utf-8")
    return [line.strip() for line in data.splitlines() if line.strip()]


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
    name = "__training__"
    sm.attach(lm.model, name, memories)
    try:
        report = fit(lm, groups, examples, config, tuple(memories), progress, _clipper(memories))
    finally:
        sm.detach(lm.model, name)
    return memories, report


def encode_examples(lm: LanguageModel, texts: Sequence[str]) -> list[Example]:
    """The tokenized training pairs of ``texts`` (see :func:`training_pairs`)."""
    ask = _chat_prompt(lm)
    return _encode(lm, [pair for text in texts for pair in training_pairs(text, ask)])


def _clipper(memories: dict[int, sm.SideGLU]) -> Callable[[], None]:
    def clip() -> None:
        for memory in memories.values():
            memory.clip_rows_()

    return clip


def _chat_prompt(lm: LanguageModel) -> Callable[[str, int], str] | None:
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
            for chunk in _chunks(examples, config.batch_size):
                batch = _collate(lm, chunk)
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
) -> TrainReport:
    """Train ``params`` (already inside ``lm.model``) on ``examples``; the rest stays frozen.

    ``params`` is a list of parameters (trained at ``config.lr``) or of
    optimizer parameter groups, each with its own ``lr``.

    Minibatches of ``config.batch_size`` examples, the task loss plus the
    locality KL to the model as it is at the start, AdamW, early stopping
    on the epoch loss. Also used to train the LoRA baseline of the benchmark.
    """
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
    reference = _Locality(lm, config.locality_batch, generator) if config.locality_weight else None
    start, idle, best, epoch_loss, step = time.perf_counter(), 0, float("inf"), float("inf"), 0
    while step < config.steps:
        losses: list[float] = []
        for chunk in epoch_batches(examples, config.batch_size, generator):
            step += 1
            optimizer.zero_grad(set_to_none=True)
            task = _task_loss(lm, _collate(lm, chunk))
            loss = task
            if reference is not None:
                loss = loss + config.locality_weight * reference.divergence()
            loss.backward()
            optimizer.step()
            schedule.step()
            if after_step:
                after_step()
            losses.append(float(task.detach()))
            if progress:
                progress(step, config.steps)
            if step >= config.steps:
                break
        epoch_loss = sum(losses) / len(losses)
        idle = 0 if epoch_loss < 0.99 * best else idle + 1
        best = min(best, epoch_loss)
        if epoch_loss < config.target_loss or idle >= config.patience:
            break
    for p in trained:
        p.requires_grad_(False)
    return TrainReport(
        steps=step,
        final_loss=epoch_loss,
        seconds=time.perf_counter() - start,
        trainable_parameters=sum(p.numel() for p in trained),
        layers=layers,
        examples=len(examples),
    )


class _Locality:
    """KL of the adapted model to the frozen one where it speaks of other things.

    Two rotating samples a step, each of ``per_step`` examples: lines of
    general text (every next token), and ordinary chat questions answered by
    the model as it is at the start (the tokens of its own reply), rendered
    the way the memories' questions are. The memories are learned as chat
    answers, and general text alone did not keep them from answering other
    questions (measured at 100 facts: 55 % of ordinary questions the base
    model got right were still right).
    """

    def __init__(self, lm: LanguageModel, per_step: int, generator: torch.Generator) -> None:
        self.lm, self.per_step, self.generator = lm, per_step, generator
        self.pools = [_encode(lm, [("", line) for line in general_text()]), _own_replies(lm)]
        with torch.no_grad():
            self.frozen = [
                [lp for chunk in _chunks(pool, 16) for lp in _target_log_probs(lm, chunk)]
                for pool in self.pools
            ]

    def divergence(self) -> torch.Tensor:
        """The sum over both samples of the mean KL per target token."""
        total = torch.zeros((), device=self.lm.device)
        for pool, frozen in zip(self.pools, self.frozen, strict=True):
            if not pool:
                continue
            picks = torch.randperm(len(pool), generator=self.generator)[: self.per_step].tolist()
            adapted = _target_log_probs(self.lm, [pool[i] for i in picks])
            kl = [
                F.kl_div(here, frozen[i], log_target=True, reduction="sum")
                for here, i in zip(adapted, picks, strict=True)
            ]
            total = total + torch.stack(kl).sum() / sum(here.shape[0] for here in adapted)
        return total


def _own_replies(lm: LanguageModel) -> list[Example]:
    """The packaged general questions, each with the model's own greedy reply as its target.

    The replies are decoded once per model (and set of attached memories) in a
    process: every later training run on it reuses them.
    """
    from memos.chat import greedy_batch

    ask = _chat_prompt(lm)
    if ask is None:
        return []
    prompts = [lm.encode(ask(q, i)) for i, q in enumerate(general_questions())]
    key = (lm.fingerprint, tuple(sorted(sm.attached(lm.model))))
    replies = _REPLIES.get(key)
    if replies is None:
        replies = _REPLIES[key] = greedy_batch(lm, prompts, LOCALITY_REPLY_TOKENS)
    bos = lm.tokenizer.bos_token_id
    examples = []
    for prompt, reply in zip(prompts, replies, strict=True):
        head = ([bos] if bos is not None else []) + prompt
        examples.append((head + reply, [-100] * len(head) + reply))
    return [ex for ex in examples if any(label != -100 for label in ex[1])]


def _target_log_probs(lm: LanguageModel, examples: Sequence[Example]) -> list[torch.Tensor]:
    """Per example, next-token log-probabilities where the next token is a target ``[n, V]``."""
    logits, _, where = _target_logits(lm, _collate(lm, examples))
    return list(F.log_softmax(logits.float(), dim=-1).split(where.sum(dim=1).tolist()))


def _task_loss(lm: LanguageModel, batch: dict[str, Any]) -> torch.Tensor:
    """Next-token loss on target tokens only."""
    logits, targets, _ = _target_logits(lm, batch)
    return F.cross_entropy(logits.float(), targets)


def _target_logits(
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


def _encode(lm: LanguageModel, pairs: Sequence[tuple[str, str]]) -> list[Example]:
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
    batches = list(_chunks([examples[i] for i in order], size))
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def _chunks(examples: list[Example], size: int) -> Iterator[list[Example]]:
    for start in range(0, len(examples), size):
        yield examples[start : start + size]


def _collate(lm: LanguageModel, examples: Sequence[Example]) -> dict[str, Any]:
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
