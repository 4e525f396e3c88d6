"""Training side-GLU memories on memory items (plaintext → parametric).

Training text comes from each item: its text as plain language modelling,
and, for statements of the form ``<subject> is <value>``, a cue form
(``<subject> is`` → `` <value>``) and a question form (``Question: What is
<subject>?`` → `` <value>``) with loss on the answer only. A locality term
keeps the model's next-token distribution on unrelated general text close to
the frozen model's (KL), and row norms are clipped after each AdamW step.
Training is seeded and stops early when the loss reaches a target or stops
improving.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import torch
from torch.nn import functional as F

from memos import side_memory as sm
from memos.errors import InvalidInputError
from memos.lm import LanguageModel

_STATEMENT = re.compile(r"^(?P<subject>.+?)\s+is\s+(?P<value>.+?)[.!]?$", re.IGNORECASE)


@dataclass(frozen=True)
class TrainConfig:
    """Consolidation settings.

    Attributes:
        rank: units per memory layer.
        layers: decoder layers to add memories to (``None``: a third, half
            and two thirds of the way up).
        steps: most optimizer steps.
        lr: AdamW learning rate.
        locality_weight: weight of the KL term on general text.
        target_loss: stop once the task loss falls below this.
        patience: stop after this many steps without a 1% improvement of the
            best task loss (the plain-text term keeps the loss above zero).
        seed: seeds initialization order and batching.
        backend: side-GLU kernel backend (``auto``, ``triton``, ``reference``).
    """

    rank: int = 32
    layers: tuple[int, ...] | None = None
    steps: int = 300
    lr: float = 5e-2
    locality_weight: float = 0.5
    target_loss: float = 0.05
    patience: int = 10
    seed: int = 0
    backend: str = "auto"

    def __post_init__(self) -> None:
        for name in ("rank", "steps", "patience"):
            if getattr(self, name) < 1:
                raise InvalidInputError(f"{name}={getattr(self, name)}; allowed: >= 1")
        if self.lr <= 0 or self.locality_weight < 0:
            raise InvalidInputError("lr must be > 0 and locality_weight >= 0")


@dataclass(frozen=True)
class TrainReport:
    """What a consolidation run did."""

    steps: int
    final_loss: float
    seconds: float
    trainable_parameters: int
    layers: tuple[int, ...]
    examples: int


def training_pairs(text: str) -> list[tuple[str, str]]:
    """(prompt, target) pairs for one memory; the loss falls on the target only."""
    pairs = [("", text)]
    match = _STATEMENT.match(text.strip())
    if match:
        subject, value = match["subject"], match["value"]
        pairs.append((f"{subject} is", f" {value}."))
        pairs.append((f"Question: What is {subject}?\nAnswer:", f" {value}."))
    return pairs


def general_text() -> list[str]:
    """The packaged general-text corpus (written for memos) used for locality."""
    data = resources.files("memos.data").joinpath("general_text.txt").read_text(encoding="utf-8")
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
    batch = _batch(lm, [pair for text in texts for pair in training_pairs(text)])
    locality = _batch(lm, [("", line) for line in general_text()])
    memories = _init(lm, batch, layers, config)
    name = "__training__"
    sm.attach(lm.model, name, memories)
    try:
        with torch.no_grad():
            frozen = _log_probs(lm, locality, enabled=False)
        report = _optimize(lm, memories, batch, locality, frozen, config, progress)
    finally:
        sm.detach(lm.model, name)
    return memories, report


def _init(
    lm: LanguageModel, batch: dict[str, Any], layers: Sequence[int], config: TrainConfig
) -> dict[int, sm.SideGLU]:
    captured: dict[int, torch.Tensor] = {}
    handles = [
        sm.decoder_layers(lm.model)[i].mlp.register_forward_hook(
            lambda _m, args, _o, i=i: captured.__setitem__(i, args[0].detach())
        )
        for i in layers
    ]
    try:
        with torch.no_grad():
            lm.model(input_ids=batch["ids"], attention_mask=batch["mask"])
    finally:
        for handle in handles:
            handle.remove()
    memories = {}
    for i in layers:
        acts = captured[i][batch["mask"].bool()]  # [tokens, d]
        host = sm.host_mlp(sm.decoder_layers(lm.model)[i])
        memories[i] = sm.principled_memory(host, acts, config.rank, config.backend)
    return memories


def _optimize(
    lm: LanguageModel,
    memories: dict[int, sm.SideGLU],
    batch: dict[str, Any],
    locality: dict[str, Any],
    frozen: torch.Tensor,
    config: TrainConfig,
    progress: Callable[[int, int], None] | None,
) -> TrainReport:
    params = [p for m in memories.values() for p in m.parameters()]
    for p in lm.model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    start, idle, best, loss_value, step = time.perf_counter(), 0, float("inf"), float("inf"), 0
    lm.model.train(False)
    for step in range(1, config.steps + 1):
        optimizer.zero_grad(set_to_none=True)
        task = _task_loss(lm, batch)
        loss = task
        if config.locality_weight:
            adapted = _log_probs(lm, locality, enabled=True)
            kl = F.kl_div(adapted, frozen, log_target=True, reduction="none").sum(-1)
            loss = loss + config.locality_weight * kl[locality["mask"].bool()].mean()
        loss.backward()
        optimizer.step()
        for memory in memories.values():
            memory.clip_rows_()
        loss_value = float(task.detach())
        idle = 0 if loss_value < 0.99 * best else idle + 1
        best = min(best, loss_value)
        if progress:
            progress(step, config.steps)
        if loss_value < config.target_loss or idle >= config.patience:
            break
    for p in params:
        p.requires_grad_(False)
    return TrainReport(
        steps=step,
        final_loss=loss_value,
        seconds=time.perf_counter() - start,
        trainable_parameters=sum(p.numel() for p in params),
        layers=tuple(memories),
        examples=int(batch["ids"].shape[0]),
    )


def _task_loss(lm: LanguageModel, batch: dict[str, Any]) -> torch.Tensor:
    logits = lm.model(input_ids=batch["ids"], attention_mask=batch["mask"]).logits  # [B, T, V]
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), batch["labels"][:, 1:].flatten())


def _log_probs(lm: LanguageModel, batch: dict[str, Any], enabled: bool) -> torch.Tensor:
    with sm.memories_enabled(lm.model, enabled):
        logits = lm.model(input_ids=batch["ids"], attention_mask=batch["mask"]).logits
    return F.log_softmax(logits.float(), dim=-1)  # [B, T, V]


def _batch(lm: LanguageModel, pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Right-padded ids, attention mask and labels (-100 outside each target)."""
    bos = lm.tokenizer.bos_token_id
    rows, labels = [], []
    for prompt, target in pairs:
        head = ([bos] if bos is not None else []) + (lm.encode(prompt) if prompt else [])
        tail = lm.encode(target)
        rows.append(head + tail)
        labels.append([-100] * len(head) + tail)
    width = max(len(r) for r in rows)
    pad = lm.tokenizer.pad_token_id or 0
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=lm.device)
    lab = torch.tensor([r + [-100] * (width - len(r)) for r in labels], device=lm.device)
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=lm.device)
    return {"ids": ids, "labels": lab, "mask": mask}
