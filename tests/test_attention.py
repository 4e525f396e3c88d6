"""The LM's attention equals transformers' SDPA: masked grouped-query attention on the CPU,
and attention over a snapshot prefix and a tail."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from memos.attention import PREFIX, attention_forward


def _mask(q_length: int, kv_length: int) -> torch.Tensor:
    """Causal mask of ``q_length`` new tokens after ``kv_length - q_length`` cached ones."""
    rows = torch.arange(q_length)[:, None] + (kv_length - q_length)
    return (torch.arange(kv_length)[None, :] <= rows)[None, None]  # [1, 1, Tq, Tk]


def _inputs(
    heads: int, kv_heads: int, q_length: int, kv_length: int, head_dim: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, SimpleNamespace]:
    """Seeded query, key, value ``[1, heads | kv_heads, T, D]`` and an attention module stand-in."""
    generator = torch.Generator().manual_seed(seed)
    query = torch.randn(1, heads, q_length, head_dim, generator=generator)
    key = torch.randn(1, kv_heads, kv_length, head_dim, generator=generator)
    value = torch.randn(1, kv_heads, kv_length, head_dim, generator=generator)
    return (
        query,
        key,
        value,
        SimpleNamespace(num_key_value_groups=heads // kv_heads, is_causal=True),
    )


@pytest.mark.parametrize(
    ("heads", "kv_heads", "q_length", "kv_length", "head_dim"),
    [(9, 3, 24, 1044, 64), (4, 2, 1, 9, 8), (6, 3, 7, 41, 16), (8, 8, 5, 13, 32)],
)
def test_matches_transformers_sdpa(
    heads: int, kv_heads: int, q_length: int, kv_length: int, head_dim: int
) -> None:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    query, key, value, module = _inputs(
        heads, kv_heads, q_length, kv_length, head_dim, heads * 1000 + kv_length
    )
    mask = _mask(q_length, kv_length)
    with torch.inference_mode():
        ours, _ = attention_forward(module, query, key, value, mask, scaling=head_dim**-0.5)
        theirs, _ = sdpa_attention_forward(module, query, key, value, mask, scaling=head_dim**-0.5)
    assert ours.shape == theirs.shape == (1, q_length, heads, head_dim)
    error = (ours - theirs).abs().max().item()
    assert error < 1e-5, error


def _prefixed_key(
    key: torch.Tensor, value: torch.Tensor, length: int, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """The tail of ``key``/``value`` after ``length`` tokens, tagged with its prefix."""
    tail = key[:, :, length:].clone()
    setattr(tail, PREFIX, (key[:, :, :length].to(dtype), value[:, :, :length].to(dtype)))
    return tail, value[:, :, length:].clone()


@pytest.mark.parametrize(
    ("heads", "kv_heads", "q_length", "kv_length", "prefix", "head_dim", "mask_kind"),
    [
        (9, 3, 24, 1044, 1020, 64, "bool"),
        (9, 3, 1, 1045, 1020, 64, "none"),  # a decode step: every key visible
        (6, 3, 7, 41, 30, 16, "float"),
        (4, 2, 5, 14, 3, 8, "none"),  # several new tokens, causal mask made here
        (8, 8, 3, 20, 12, 32, "bool"),  # one group
        (6, 2, 4, 19, 9, 16, "padded"),  # the prefix partly masked
    ],
)
def test_prefixed_cache_attention_equals_one_piece(
    heads: int,
    kv_heads: int,
    q_length: int,
    kv_length: int,
    prefix: int,
    head_dim: int,
    mask_kind: str,
) -> None:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    query, key, value, module = _inputs(
        heads, kv_heads, q_length, kv_length, head_dim, heads * 100 + kv_length
    )
    mask = _mask(q_length, kv_length)
    if mask_kind == "padded":
        mask[..., :2] = False
    given = {
        "bool": mask,
        "padded": mask,
        "none": None,
        "float": torch.zeros(mask.shape).masked_fill(~mask, float("-inf")),
    }[mask_kind]
    tail_key, tail_value = _prefixed_key(key, value, prefix, torch.float32)
    with torch.inference_mode():
        ours, _ = attention_forward(module, query, tail_key, tail_value, given, scaling=0.3)
        theirs, _ = sdpa_attention_forward(module, query, key, value, mask, scaling=0.3)
    assert ours.shape == theirs.shape == (1, q_length, heads, head_dim)
    error = (ours - theirs).abs().max().item()
    assert error < 1e-5, error


def test_prefix_in_half_precision_is_attended_close_to_full(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bfloat16 prefix is attended close to full precision both by torch's flash kernel and
    by the bf16 GEMMs taken on CPUs with bf16 arithmetic (forced here, so it runs on any CPU);
    the two paths are distinct computations."""
    from memos import attention

    query, key, value, module = _inputs(9, 3, 24, 300, 64, seed=7)
    mask = _mask(24, 300)
    tail_key, tail_value = _prefixed_key(key, value, 276, torch.bfloat16)
    replies = {}
    with torch.inference_mode():
        full, _ = attention_forward(module, query, key, value, mask, scaling=0.125)
        for bf16_gemm in (False, True):
            monkeypatch.setattr(attention, "_cpu_has_bf16", lambda on=bf16_gemm: on)
            ours, _ = attention_forward(module, query, tail_key, tail_value, mask, scaling=0.125)
            assert ours.dtype == torch.float32
            error = (ours - full).abs().max().item()
            assert 0 < error < 3e-2, (bf16_gemm, error)
            replies[bf16_gemm] = ours
    assert not torch.equal(replies[False], replies[True])


def test_prefixed_keys_are_joined_where_gradients_flow() -> None:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    query, key, value, module = _inputs(4, 2, 5, 12, 8, seed=3)
    tail_key, tail_value = _prefixed_key(key, value, 7, torch.float32)
    ours, _ = attention_forward(module, query, tail_key, tail_value, _mask(5, 12), scaling=0.5)
    theirs, _ = sdpa_attention_forward(module, query, key, value, _mask(5, 12), scaling=0.5)
    assert (ours - theirs).abs().max().item() < 1e-5
