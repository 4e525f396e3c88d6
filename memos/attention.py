"""Attention for the loaded LM: transformers' SDPA, with grouped-query attention left to torch.

transformers' ``sdpa`` attention repeats each key/value head
``num_key_value_groups`` times (``repeat_kv``: a copy of the whole cache, per
layer, per forward) whenever it is given a mask, because CUDA's fused kernels
do not take a mask together with grouped-query attention. torch's CPU flash
kernel does (``enable_gqa=True``), and a forward that continues from a KV
snapshot always has a mask: the user's turn attends causally to itself and
to the whole cached prefix. So on the CPU, without gradients, masked
grouped-query attention goes straight to torch; everything else (CUDA,
training, no mask, one group) is transformers' own function, unchanged.

Measured on 2 CPU cores (SmolLM2-135M: 9 query heads over 3 key/value heads,
24 query tokens, 30 layers): attention over a 1,044-token cache took 16.0 ms
on pre-repeated heads plus 3.5 ms for the repeat copies, and 15.0 ms with
``enable_gqa``; over 2,052 tokens, 36.2 ms plus 7.3 ms against 28.3 ms. The
outputs are identical (max abs difference 0.0).
"""

from __future__ import annotations

import functools
from typing import Any

NAME = "memos_sdpa"
# Attribute of a cache's key tensor that holds the snapshot prefix it continues
# (``(keys, values)``, each ``[B, kv_heads, P, head_dim]``); see
# :mod:`memos.activation.prefix_cache`.
PREFIX = "memos_prefix"


def register() -> str:
    """Register the attention (and its mask, SDPA's) with transformers; returns its name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, attention_forward)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    return NAME


def attention_forward(
    module: Any,
    query: Any,  # [B, heads, Tq, head_dim]
    key: Any,  # [B, kv_heads, Tk, head_dim]
    value: Any,  # [B, kv_heads, Tk, head_dim]
    attention_mask: Any,  # [B, 1, Tq, Tk] bool (True attends) or additive float, or None
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[Any, None]:
    """Attention output ``[B, Tq, heads, head_dim]`` (transformers' attention signature)."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    prefix = getattr(key, PREFIX, None)
    fast = (
        query.device.type == "cpu"
        and dropout == 0.0
        and not torch.is_grad_enabled()
        and all(kwargs.get(name) is None for name in ("position_bias", "cache", "softcap"))
        and not kwargs.get("output_attentions", False)
    )
    if prefix is not None and fast:
        return _prefixed(query, key, value, prefix, attention_mask, scaling), None
    if prefix is not None:  # elsewhere: attend over the whole sequence in one piece
        key = torch.cat([prefix[0].to(key.dtype), key], dim=-2)
        value = torch.cat([prefix[1].to(value.dtype), value], dim=-2)
    direct = fast and getattr(module, "num_key_value_groups", 1) > 1 and attention_mask is not None
    if not direct:
        return sdpa_attention_forward(
            module,
            query,
            key,
            value,
            attention_mask,
            dropout=dropout,
            scaling=scaling,
            is_causal=is_causal,
            **kwargs,
        )
    output = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_mask, scale=scaling, enable_gqa=True
    )  # [B, heads, Tq, head_dim]
    return output.transpose(1, 2).contiguous(), None


def _prefixed(
    query: Any,  # [B, heads, Tq, head_dim]
    tail_key: Any,  # [B, kv_heads, Tt, head_dim]: the tokens after the prefix, these included
    tail_value: Any,
    prefix: tuple[Any, Any],  # [B, kv_heads, P, head_dim] each, in their stored dtype
    mask: Any,  # [B, 1, Tq, P + Tt] bool or additive, or None (every key visible)
    scaling: float | None,
) -> Any:
    """Attention over a snapshot prefix and a tail, merged by log-sum-exp: ``[B, Tq, heads, D]``.

    Each part is one call of torch's CPU flash kernel, which returns the
    log-sum-exp of its scores; a bfloat16 prefix that every query sees is
    attended with bf16 GEMMs instead where the CPU has bf16 arithmetic
    (:func:`_gemm_part`). The query heads of a key/value group are laid
    out as extra query rows (``[B, kv_heads, groups * Tq, D]``), so neither
    part repeats a key/value head. The prefix is attended in its own dtype.
    """
    import torch

    flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    batch, heads, tq, dim = query.shape
    kv_heads, length = prefix[0].shape[1], prefix[0].shape[2]
    rows = query.reshape(batch, kv_heads, heads // kv_heads * tq, dim)  # [B, kv, G*Tq, D]

    def part(keys: Any, values: Any, part_mask: Any) -> tuple[Any, Any]:
        out, lse = flash(rows.to(keys.dtype), keys, values, attn_mask=part_mask, scale=scaling)[:2]
        return out.to(query.dtype), lse  # [B, kv, G*Tq, D], [B, kv, G*Tq] (fp32)

    groups = heads // kv_heads
    dtypes = (prefix[0].dtype, tail_key.dtype)
    head_mask, tail_mask = _split_masks(mask, tq, length, tail_key.shape[2], groups, dtypes)
    if head_mask is None and _bf16_gemm(prefix[0].dtype):
        out_p, lse_p = _gemm_part(rows, prefix[0], prefix[1], scaling)
        out_p = out_p.to(query.dtype)
    else:
        out_p, lse_p = part(prefix[0], prefix[1], head_mask)
    if head_mask is not None:  # a query row that sees none of the prefix gets weight 0, not NaN
        out_p = out_p.nan_to_num(0.0)
    out_t, lse_t = part(tail_key, tail_value, tail_mask)
    top = torch.maximum(lse_p, lse_t)
    w_p, w_t = (lse_p - top).exp(), (lse_t - top).exp()  # [B, kv, G*Tq]
    merged = (out_p * w_p[..., None] + out_t * w_t[..., None]) / (w_p + w_t)[..., None]
    return merged.reshape(batch, heads, tq, dim).transpose(1, 2).contiguous()


def _bf16_gemm(dtype: Any) -> bool:
    """Whether a prefix of ``dtype`` is attended with bf16 GEMMs (see :func:`_gemm_part`):
    only a bfloat16 prefix, and only on a CPU with bf16 arithmetic (oneDNN's check)."""
    import torch

    return dtype == torch.bfloat16 and _cpu_has_bf16()


@functools.cache
def _cpu_has_bf16() -> bool:
    import torch

    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _gemm_part(rows: Any, keys: Any, values: Any, scaling: float | None) -> tuple[Any, Any]:
    """Attention of ``rows`` ``[B, kv, R, D]`` over every key of a bfloat16 prefix, as two
    batched GEMMs: ``(out [B, kv, R, D] fp32, log-sum-exp [B, kv, R] fp32)``.

    On a CPU with bf16 dot products (AVX512-BF16) oneDNN's bf16 GEMMs run
    faster than torch's CPU flash kernel does for a user turn's few query
    rows: 0.74 ms against 1.31 ms a layer over 2,028 keys (72 rows, 64 dims),
    as measured on 2 Zen 4 cores by the session that wrote this path; it has
    not been re-measured since, as later machines had no bf16 arithmetic. The
    scores are rounded to bf16 (the GEMM's output dtype), so this path is
    less exact than the flash kernel's fp32 scores; the tests check that a
    bf16 snapshot still gives the reply of a full prefill on either path.
    """
    import torch

    scale = scaling if scaling is not None else rows.shape[-1] ** -0.5
    scores = torch.matmul((rows * scale).to(keys.dtype), keys.transpose(-1, -2))  # [B, kv, R, P]
    top = scores.amax(-1, keepdim=True)
    weights = scores.sub_(top).exp_()  # in place: the scores are not needed again
    total = weights.sum(-1, dtype=torch.float32)
    out = torch.matmul(weights, values).float() / total[..., None]
    return out, top[..., 0].float() + total.log()


def _split_masks(
    mask: Any, tq: int, length: int, tail: int, groups: int, dtypes: tuple[Any, Any]
) -> tuple[Any, Any]:
    """The additive masks of the prefix part (``None``: all visible) and of the tail part,
    with grouped query rows.

    Every layer of a forward gets the same mask tensor, so the split is made
    once and kept on it (the check that every query sees the whole prefix, and
    the conversions, took about 1.5 ms a forward when made in each of 30 layers).
    """
    import torch

    if mask is None and tq == 1:
        return None, None
    made = getattr(mask, "_memos_split", None)
    if made is not None and made[0] == (length, groups, dtypes):
        return made[1]
    full = mask
    if full is None:  # several new tokens with no mask given: causal over the tail
        causal = torch.ones(tq, tq, dtype=torch.bool).tril()
        full = torch.cat([causal.new_ones(tq, length + tail - tq), causal], dim=1)[None, None]
    head = full[..., :length]
    if head.dtype == torch.bool and bool(head.all()):
        head_mask = None  # the usual case: every query sees the whole snapshot
    else:
        head_mask = _grouped(_additive(head, dtypes[0]), groups)
    split = (head_mask, _grouped(_additive(full[..., length:], dtypes[1]), groups))
    if mask is not None:
        mask._memos_split = ((length, groups, dtypes), split)
    return split


def _additive(mask: Any, dtype: Any) -> Any:
    """A bool mask (True attends) as an additive one in ``dtype``; additive masks are cast."""
    import torch

    if mask.dtype != torch.bool:
        return mask.to(dtype)
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(
        ~mask, float("-inf")
    )


def _grouped(mask: Any, groups: int) -> Any:
    """``[B, 1, Tq, K]`` → ``[B, 1, groups * Tq, K]``, matching the grouped query rows."""
    batch, one, tq, keys = mask.shape
    return mask[:, :, None].expand(batch, one, groups, tq, keys).reshape(batch, one, -1, keys)
