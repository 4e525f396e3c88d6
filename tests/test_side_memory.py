"""Side-GLU memories on the default model: no-op init, exact merge (a gated memory only
with its gate dropped), plain save/load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import assert_close

from memos import InvalidInputError
from memos.lm import LanguageModel
from memos.parametric import side_memory as sm

pytestmark = pytest.mark.real_model

TEXT = "Zorbil's favourite instrument is the glass harmonica."


def _logits(lm: LanguageModel, text: str = TEXT) -> torch.Tensor:
    with torch.inference_mode():
        return lm.model(input_ids=torch.tensor([lm.encode(text)])).logits[0]


def _activations(lm: LanguageModel, layer: int, text: str = TEXT) -> torch.Tensor:
    captured: list[torch.Tensor] = []
    handle = sm.decoder_layers(lm.model)[layer].mlp.register_forward_hook(
        lambda _m, args, _out: captured.append(args[0].detach())
    )
    try:
        _logits(lm, text)
    finally:
        handle.remove()
    return captured[0]


def _memories(lm: LanguageModel, layers: list[int], rank: int, seed: int) -> dict[int, sm.SideGLU]:
    gen = torch.Generator().manual_seed(seed)
    memories = {}
    for index in layers:
        host = sm.host_mlp(sm.decoder_layers(lm.model)[index])
        memory = sm.principled_memory(host, _activations(lm, index), rank, backend="reference")
        with torch.no_grad():
            memory.V.copy_(torch.randn(memory.V.shape, generator=gen) * 0.5)
        memory.clip_rows_()
        memories[index] = memory
    return memories


def test_principled_init_is_an_exact_no_op(lm: LanguageModel) -> None:
    before = _logits(lm)
    host = sm.host_mlp(sm.decoder_layers(lm.model)[10])
    memory = sm.principled_memory(host, _activations(lm, 10), rank=8)
    assert torch.count_nonzero(memory.V) == 0
    assert memory.key_norm == pytest.approx(sm.key_norm_for(host)) and memory.key_norm > 1
    torch.testing.assert_close(memory.G.norm(dim=0), torch.full((8,), memory.key_norm))
    expected_tau = float(host.down_proj.weight.detach().norm(dim=0).mean()) / 8
    assert float(memory.tau) == pytest.approx(expected_tau)
    sm.attach(lm.model, "noop", {10: memory})
    try:
        assert torch.equal(_logits(lm), before)
    finally:
        sm.detach(lm.model, "noop")
    assert torch.equal(_logits(lm), before)


def test_clip_rows_bounds_every_unit() -> None:
    memory = sm.SideGLU(16, 4, tau=1.0)
    with torch.no_grad():
        for p in (memory.G, memory.K, memory.V):
            p.normal_(0, 3)
    memory.clip_rows_()
    assert memory.G.norm(dim=0).max() <= 1 + 1e-6 and memory.K.norm(dim=0).max() <= 1 + 1e-6
    assert memory.V.norm(dim=1).max() > 1  # value vectors are not clipped


def test_several_memories_merge_exactly_and_save_as_plain_transformers(
    lm: LanguageModel, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM

    original = _logits(lm)
    state = {k: v.clone() for k, v in lm.model.state_dict().items()}
    inter = lm.model.config.intermediate_size
    sm.attach(lm.model, "facts-a", _memories(lm, [3, 12], rank=4, seed=1))
    gated = _memories(lm, [12, 20], rank=6, seed=2)
    sm.attach(lm.model, "facts-b", gated)
    assert sm.attached(lm.model) == {"facts-a": [3, 12], "facts-b": [12, 20]}
    with_memory = _logits(lm)
    assert (with_memory - original).abs().max() > 1e-3  # the memories do something
    for memory in gated.values():  # a gate: the host FFN has none, so it merges only dropped
        memory.threshold = 1.0
    try:
        with pytest.raises(InvalidInputError, match="drop_gates"):
            sm.merge(lm.model)
        assert sm.attached(lm.model) == {"facts-a": [3, 12], "facts-b": [12, 20]}
        assert sm.merge(lm.model, drop_gates=True) == 10  # as if ungated
        assert sm.attached(lm.model) == {}
        assert lm.model.config.intermediate_size == inter + 10
        merged = _logits(lm)
        assert_close("merged logits", merged, with_memory, atol=1e-4, rtol=0)
        lm.model.save_pretrained(tmp_path / "merged")
        lm.tokenizer.save_pretrained(tmp_path / "merged")
        plain = AutoModelForCausalLM.from_pretrained(tmp_path / "merged", local_files_only=True)
        with torch.inference_mode():
            reloaded = plain(input_ids=torch.tensor([lm.encode(TEXT)])).logits[0]
        assert_close("reloaded logits", reloaded, with_memory, atol=1e-4, rtol=0)
    finally:
        for layer in sm.decoder_layers(lm.model):  # put the shared model back as it was
            host = sm.host_mlp(layer)
            for proj, dim in (("gate_proj", 0), ("up_proj", 0), ("down_proj", 1)):
                linear = getattr(host, proj)
                linear.weight = torch.nn.Parameter(linear.weight.narrow(dim, 0, inter).clone())
                linear.out_features, linear.in_features = linear.weight.shape
        lm.model.config.intermediate_size = inter
        lm.model.load_state_dict(state)
    assert torch.equal(_logits(lm), original)


def test_bad_rank_and_duplicate_names(lm: LanguageModel) -> None:
    host = sm.host_mlp(sm.decoder_layers(lm.model)[0])
    with pytest.raises(InvalidInputError):
        sm.principled_memory(host, _activations(lm, 0), rank=10_000)
    memory = sm.SideGLU(lm.model.config.hidden_size, 2, 1.0)
    sm.attach(lm.model, "dup", {0: memory})
    try:
        with pytest.raises(InvalidInputError, match="already"):
            sm.attach(lm.model, "dup", {0: sm.SideGLU(lm.model.config.hidden_size, 2, 1.0)})
    finally:
        sm.detach(lm.model, "dup")
