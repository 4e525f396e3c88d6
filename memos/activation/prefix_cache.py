"""A KV cache that continues from a snapshot without copying it.

Each layer keeps the snapshot's keys and values as an immutable **prefix**,
in the dtype they were stored in, and the tokens generated after it as a
growing **tail** in the model's dtype. ``update`` grows the tail only and
returns it tagged with its prefix (:data:`memos.attention.PREFIX`), and
:func:`memos.attention.attention_forward` attends over the two parts
separately and merges them by their log-sum-exp. So a request never copies
the snapshot, neither on restore nor on each new token, the way a
``DynamicLayer``'s concatenation does (9 ms of a 2,028-token first forward on
2 CPU cores, fp32), and a half-precision snapshot is attended in its own
dtype. Sequence length and mask sizes count the prefix, so positions and masks
are those of the whole sequence.
"""

from __future__ import annotations

from typing import Any

from memos.attention import PREFIX


def prefix_layer_type() -> type:
    """The cache layer class (built on first use: transformers loads lazily)."""
    global _LAYER
    if _LAYER is None:
        _LAYER = _define()
    return _LAYER


_LAYER: type | None = None


def _define() -> type:
    import torch
    from transformers.cache_utils import DynamicLayer

    class PrefixLayer(DynamicLayer):
        """An immutable prefix ``[B, kv_heads, P, head_dim]`` and a growing tail."""

        def __init__(self, keys: torch.Tensor, values: torch.Tensor, dtype: torch.dtype) -> None:
            super().__init__()
            self.prefix = (keys, values)
            self.prefix_length = int(keys.shape[-2])
            self.device = keys.device
            empty = keys.new_empty((*keys.shape[:-2], 0, keys.shape[-1]), dtype=dtype)
            self.keys, self.values = empty, empty.clone()
            self.is_initialized = True

        def update(
            self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
        ) -> tuple[torch.Tensor, torch.Tensor]:
            keys = torch.cat([self._tail(self.keys), key_states], dim=-2)
            values = torch.cat([self._tail(self.values), value_states], dim=-2)
            setattr(keys, PREFIX, self.prefix)
            self.keys, self.values = keys, values
            return keys, values

        def get_seq_length(self) -> int:
            return self.prefix_length + int(self._tail(self.keys).shape[-2])

        @staticmethod
        def _tail(tensor: torch.Tensor | None) -> torch.Tensor:
            if tensor is None:
                raise RuntimeError("a cache over a snapshot was reset")
            return tensor

        def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
            return self.get_seq_length() + query_length, 0

        def crop(self, tokens_to_remove: int) -> None:
            raise NotImplementedError("a cache over a snapshot cannot be cropped")

    return PrefixLayer
