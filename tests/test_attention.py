"""The LM's attention: masked grouped-query SDPA on the CPU equals transformers' SDPA."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from memos.attention import attention_forward


def _mask(q_length: int, kv_length: int) -> torch.Tensor:
    """Causal mask of ``q_length`` new tokens after ``kv_length - q_length`` cached ones."""
    rows = torch.arange(q_length)[:, None] + (kv_length - q_length)
    return (torch.arange(kv_length)[None, :] <= rows)[None, None]  # [1, 1, Tq, Tk]


@pytest.mark.parametrize(
    ("heads", "kv_heads", "q_length", "kv_length", "head_dim"),
    [(9, 3, 24, 1044, 64), (4, 2, 1, 9, 8), (6, 3, 7, 41, 16), (8, 8, 5, 13, 32)],
)
def test_matches_transformers_sdpa(
    heads: int, kv_heads: int, q_length: int, kv_length: int, head_dim: int
) -> None:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    generator = torch.Generator().manual_seed(heads * 1000 + kv_length)
    query = torch.randn(1, heads, q_length, head_dim, generator=generator)
    key = torch.randn(1, kv_heads, kv_length, head_dim, generator=generator)
    value = torch.randn(1, kv_heads, kv_length, head_dim, generator=generator)
    module = SimpleNamespace(num_key_value_groups=heads // kv_heads, is_causal=True)
    mask = _mask(q_length, kv_length)
    with torch.inference_mode():
        ours, _ = attention_forward(module, query, key, value, mask, scaling=head_dim**-0.5)
        theirs, _ = sdpa_attention_forward(module, query, key, value, mask, scaling=head_dim**-0.5)
    assert ours.shape == theirs.shape == (1, q_length, heads, head_dim)
    error = (ours - theirs).abs().max().item()
    assert error < 1e-5, error
