"""The parametric tier end to end on the default model, with a tiny rank and few steps."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import HashingEmbedder, assert_close

from memos import InvalidInputError
from memos.client import Memos
from memos.clock import ManualClock
from memos.config import MemosConfig
from memos.lm import LanguageModel, greedy
from memos.parametric import questions
from memos.parametric import side_memory as sm
from memos.parametric.check import answers
from memos.parametric.examples import epoch_batches
from memos.parametric.locality import general_text
from memos.parametric.training import TrainConfig, encode_examples, fit, training_pairs
from memos.records import AdapterInfo

pytestmark = pytest.mark.real_model

FACTS = ["Zorbil's favourite colour is amberine.", "Quenta Vash's home town is Torvak."]
# Plumbing tests train without the locality term and the gate: their reference passes
# cost more than 3 steps. The learning tests (LEARN) keep the locality term, as by
# default, and turn the gate on (off by default), so that its exactness is tested.
QUICK: dict[str, Any] = {
    "rank": 4,
    "steps": 3,
    "layers": (10,),
    "backend": "reference",
    "locality_weight": 0.0,
    "gate": False,
}
LEARN: dict[str, Any] = {
    "rank": 8,
    "steps": 40,
    "layers": (10, 15),
    "backend": "reference",
    "gate": True,
}


@pytest.fixture
def mem(tmp_path: Path, lm: LanguageModel):  # type: ignore[no-untyped-def]
    memos = Memos(
        MemosConfig(home=tmp_path), embedder=HashingEmbedder(), clock=ManualClock(), lm=lm
    )
    memos.add_many(FACTS, cube="facts")
    yield memos
    for adapter_id in list(memos.parametric.on_model):
        memos.parametric.detach(adapter_id)
    memos.close()


def test_training_pairs_have_cue_and_question_forms() -> None:
    pairs = training_pairs("Zorbil's favourite colour is amberine.")
    assert ("Zorbil's favourite colour is", " amberine.") in pairs
    assert any(
        prompt.startswith("Question: What is Zorbil's favourite colour?") for prompt, _ in pairs
    )
    assert training_pairs("Hello there") == [("", "Hello there")]


def test_chat_models_also_learn_a_chat_form() -> None:
    pairs = training_pairs("Zorbil's favourite colour is amberine.", ask=lambda q, _: f"<user>{q}")
    chat = ("<user>What is Zorbil's favourite colour?", "Zorbil's favourite colour is amberine.")
    assert chat in pairs


def test_an_epoch_visits_every_example_once_in_batches_of_like_length() -> None:
    examples = [([0] * n, [-100] * n) for n in (3, 9, 3, 9, 3, 9, 5)]
    batches = epoch_batches(examples, 3, torch.Generator().manual_seed(0))
    assert sorted(len(ids) for batch in batches for ids, _ in batch) == [3, 3, 3, 5, 9, 9, 9]
    assert sorted(sorted(len(ids) for ids, _ in batch) for batch in batches) == [
        [3, 3, 3],
        [5, 9, 9],
        [9],
    ]


def test_consolidate_attach_chat_detach(mem: Memos, lm: LanguageModel) -> None:
    before = _logits(lm)
    info = mem.consolidate("facts", **QUICK)
    assert info.items == 2 and info.layers == [10] and info.rank == 4 and not info.attached
    assert info.training["steps"] == 3 and info.training["trainable_parameters"] == 3 * 4 * 576
    assert Path(info.path).is_file()
    assert torch.equal(_logits(lm), before)  # training leaves the model as it was
    mem.parametric.attach(info.id)
    assert sm.attached(lm.model) == {info.id: [10]}
    assert not torch.equal(_logits(lm), before)
    snapshot = mem.build_snapshot("facts")
    reply = mem.chat("What is Zorbil's favourite colour?", cube="facts", max_new_tokens=3)
    assert reply.snapshot_id is None  # snapshots are skipped while adapters change the weights
    assert reply.cached_tokens == 0 and reply.prompt_tokens > 0
    assert [s.id for s in mem.activation.snapshots("facts")] == [snapshot.id]
    mem.parametric.detach(info.id)
    assert sm.attached(lm.model) == {} and torch.equal(_logits(lm), before)


def test_changed_source_makes_adapter_stale(mem: Memos) -> None:
    info = mem.consolidate("facts", **QUICK)
    item = mem.list(cube="facts", limit=1)[0]
    mem.update(item.id, item.text.replace(".", "!"))
    assert mem.parametric.info(info.id).stale
    with pytest.raises(InvalidInputError, match="stale"):
        mem.parametric.attach(info.id)


def test_merge_saves_a_plain_model_with_the_adapter_inside(
    mem: Memos, lm: LanguageModel, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM

    info = mem.consolidate("facts", **QUICK)
    mem.parametric.attach(info.id)
    with_adapter = _logits(lm)
    mem.parametric.detach(info.id)
    out = mem.parametric.merge([info.id], tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(out, local_files_only=True)
    assert merged.config.intermediate_size == lm.model.config.intermediate_size + 4
    with torch.inference_mode():
        logits = merged(input_ids=torch.tensor([lm.encode(FACTS[0])])).logits[0]
    # one fused matmul vs two sums: fp32 rounding scales with the logits (|x| ~ 20)
    assert_close("merged logits", logits, with_adapter, atol=1e-4, rtol=1e-5)


@pytest.fixture(scope="module")
def learned(
    tmp_path_factory: pytest.TempPathFactory, lm: LanguageModel
) -> Iterator[tuple[Memos, AdapterInfo, torch.Tensor]]:
    """A Memos whose "facts" cube has one adapter trained for real (LEARN), and
    the model's logits before it: the two tests of learning share the training."""
    before = _logits(lm)
    home = tmp_path_factory.mktemp("learned")
    memos = Memos(MemosConfig(home=home), embedder=HashingEmbedder(), clock=ManualClock(), lm=lm)
    memos.add_many(FACTS, cube="facts")
    info = memos.consolidate("facts", **LEARN, target_loss=0.01)
    yield memos, info, before
    memos.close()


def test_trained_memories_recall_facts_from_cues_and_unseen_questions(
    learned: tuple[Memos, AdapterInfo, torch.Tensor], lm: LanguageModel
) -> None:
    mem, info, before = learned
    # per fact: cue, plain question, the chat wordings and the possessive reordered
    assert info.training["examples"] == 2 * (2 + len(questions.ASK) + 1)
    assert info.training["final_loss"] < 0.5
    assert torch.equal(_logits(lm), before)  # trained memories are not left attached
    with _attached(mem, info.id):
        for fact in FACTS:
            cue, value = fact.rsplit(" is ", 1)
            bos = [lm.tokenizer.bos_token_id] if lm.tokenizer.bos_token_id is not None else []
            out, _ = greedy(lm, bos + lm.encode(f"{cue} is"), None, 6, 0.0)
            assert lm.tokenizer.decode(out).strip().startswith(value.rstrip("."))
        # held-out wordings, asked the way a chat asks once the memory left the prompt:
        # the adapter as saved and attached answers as the check after training recorded
        asked = [q for fact in FACTS for q in questions.check_questions(fact)]
        assert len(asked) == 2 * len(questions.CHECK)
        recall = sum(answers(lm, q) for q in asked) / len(asked)
        assert recall == info.question_recall and recall >= 0.5


def test_a_gated_adapter_reads_ordinary_text_exactly_as_the_base_model_does(
    learned: tuple[Memos, AdapterInfo, torch.Tensor], lm: LanguageModel
) -> None:
    mem, info, before = learned
    assert len(info.gate_thresholds) == len(info.layers) and min(info.gate_thresholds) > 0
    bos = [lm.tokenizer.bos_token_id] if lm.tokenizer.bos_token_id is not None else []
    ordinary = [bos + lm.encode(line) for line in general_text()[:3]]  # calibration text
    base = [_logits(lm, ids) for ids in ordinary]
    with _attached(mem, info.id):
        memories = [
            layer.mlp.memories[info.id]
            for layer in sm.decoder_layers(lm.model)
            if isinstance(layer.mlp, sm.MemoryMLP)
        ]
        assert [m.threshold for m in memories] == info.gate_thresholds  # as saved
        for ids, expected in zip(ordinary, base, strict=True):
            assert torch.equal(_logits(lm, ids), expected)  # silent: bit for bit
        assert not torch.equal(_logits(lm), before)  # and it speaks on its own facts


def test_a_gated_adapter_merges_only_with_its_gate_dropped(
    learned: tuple[Memos, AdapterInfo, torch.Tensor], tmp_path: Path
) -> None:
    mem, info, _ = learned
    with pytest.raises(InvalidInputError, match="drop_gates"):
        mem.parametric.merge([info.id], tmp_path / "merged")
    assert not (tmp_path / "merged").exists()


def test_adapter_holds_its_memories_only_above_the_recall_threshold(
    mem: Memos, learned: tuple[Memos, AdapterInfo, torch.Tensor]
) -> None:
    question = "What is Zorbil's favourite colour?"
    # Below: three steps teach nothing, so every memory stays in the prompt.
    weak = mem.consolidate("facts", **QUICK)
    assert weak.question_recall is not None and weak.question_recall < 0.5
    assert weak.held_items == []
    mem.parametric.attach(weak.id)
    assert len(mem.chat(question, cube="facts", max_new_tokens=1).context_items) == 2
    mem.parametric.detach(weak.id)
    # Above: trained, it answers held-out questions about what it passed.
    trained, strong, _ = learned
    assert strong.question_recall is not None and strong.question_recall >= 0.5
    config = trained.core.config
    try:
        _threshold(trained, 0.0)
        passed = trained.parametric.info(strong.id).held_items  # every memory fully answered
        assert passed, "the trained adapter answers no held-out question"
        _threshold(trained, strong.question_recall)
        held = trained.parametric.info(strong.id).held_items
        assert held == passed
        trained.parametric.attach(strong.id)
        reply = trained.chat(question, cube="facts", max_new_tokens=1)
        assert not set(reply.context_items) & set(held)
        assert trained.parametric.held_items("facts") == frozenset(held)
        # The same adapter under a threshold it misses holds nothing.
        _threshold(trained, min(1.0, strong.question_recall + 1e-6))
        if strong.question_recall < 1.0:
            assert trained.parametric.held_items("facts") == frozenset()
            assert len(trained.chat(question, cube="facts", max_new_tokens=1).context_items) == 2
    finally:
        trained.parametric.detach(strong.id)
        trained.core.config = config


def _threshold(mem: Memos, recall: float) -> None:
    config = mem.core.config
    policy = dataclasses.replace(config.scheduler, hold_min_recall=recall)
    mem.core.config = dataclasses.replace(config, scheduler=policy)


def test_stop_at_ends_training_early_on_the_whole_schedule(lm: LanguageModel) -> None:
    """The benchmark's LoRA stops where the side-GLU stopped, on the same schedule."""
    examples = encode_examples(lm, FACTS[:1])[:4]
    full = _trajectory(lm, examples, steps=3)
    stopped = _trajectory(lm, examples, steps=3, stop_at=2)
    shortened = _trajectory(lm, examples, steps=2)
    assert (len(full), len(stopped), len(shortened)) == (3, 2, 2)
    assert torch.equal(stopped[1], full[1])
    assert not torch.equal(shortened[1], full[1])  # its second step ran at half the rate
    with pytest.raises(InvalidInputError, match="stop_at"):
        _trajectory(lm, examples, steps=3, stop_at=0)


def _trajectory(
    lm: LanguageModel, examples: list[Any], steps: int, stop_at: int | None = None
) -> list[torch.Tensor]:
    """A small memory's values after each step of ``fit``, from a seeded start."""
    torch.manual_seed(0)
    memory = sm.SideGLU(lm.model.config.hidden_size, 4, tau=1.0, backend="reference")
    with torch.no_grad():
        for p in memory.parameters():
            p.normal_(std=0.02)
    config = TrainConfig(**QUICK | {"steps": steps, "target_loss": 0.0, "patience": steps})
    seen: list[torch.Tensor] = []
    sm.attach(lm.model, "trajectory", {10: memory})
    try:
        report = fit(
            lm,
            list(memory.parameters()),
            examples,
            config,
            (10,),
            after_step=lambda: seen.append(memory.V.detach().clone()),
            stop_at=stop_at,
        )
    finally:
        sm.detach(lm.model, "trajectory")
    assert report.steps == len(seen)
    return seen


def test_bad_training_settings(mem: Memos) -> None:
    with pytest.raises(InvalidInputError):
        TrainConfig(rank=0)
    with pytest.raises(InvalidInputError, match="layers"):
        mem.consolidate("facts", rank=4, steps=1, layers=(99,))
    with pytest.raises(InvalidInputError, match="no memories"):
        mem.consolidate("facts", items=[], **QUICK)


@contextmanager
def _attached(mem: Memos, adapter_id: str) -> Iterator[None]:
    mem.parametric.attach(adapter_id)
    try:
        yield
    finally:
        mem.parametric.detach(adapter_id)


def _logits(lm: LanguageModel, ids: list[int] | None = None) -> torch.Tensor:
    ids = lm.encode(FACTS[0]) if ids is None else ids
    with torch.inference_mode():
        return lm.model(input_ids=torch.tensor([ids])).logits[0]
