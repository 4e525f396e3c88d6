"""Side-GLU memories beside a host model's FFN blocks (after Locas-GLU and WISE).

For a chosen decoder layer with a gated FFN ``down(silu(gate(a)) * up(a))``
(Llama, Qwen, Mistral and kin), a side memory of rank ``r`` adds

    h = FFN(a) + tau * V^T (SiLU(G^T a) * (K^T a)),   tau = mean_j ||W_down[:, j]|| / r

and, once trained with a gate, only on the tokens whose activation norm
passes the memory's threshold (:mod:`memos.parametric.gate`).

Principled init: score the host's intermediate units by mean
``|SiLU(W_gate a) * (W_up a)|`` over the text to be memorized, copy the top-r
rows of ``W_gate`` / ``W_up`` into ``G`` / ``K``, scaled to the host's mean row
norm, and set ``V = 0`` so the memory starts as an exact no-op. Row norms are
clipped to at most that mean (``key_norm``), so a memory unit is as sharp as
a host unit and no sharper. Permanentize appends ``G``, ``K`` and ``tau * V`` as new intermediate
units of the host (exact for an ungated memory; a gate has no counterpart in
the host's FFN, so merging a gated memory drops its gate, and only when asked
to); layers without a memory get zero units, so every layer keeps one
intermediate size and plain transformers loads the result.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from memos.errors import InvalidInputError
from memos.kernels.side_glu import side_glu
from memos.parametric import gate


class SideGLU(nn.Module):
    """One rank-``r`` side memory for a hidden size ``d``.

    Parameters: ``G, K [d, r]``, ``V [r, d]``; ``tau`` is a fixed buffer.
    ``threshold`` is the gate's (0: ungated, the memory speaks at every token);
    while ``recorder`` is a list, each forward appends its activation norms.
    """

    tau: torch.Tensor

    def __init__(self, d_model: int, rank: int, tau: float, backend: str = "auto") -> None:
        super().__init__()
        if rank < 1:
            raise InvalidInputError(f"rank={rank}; allowed: >= 1")
        self.G = nn.Parameter(torch.zeros(d_model, rank))
        self.K = nn.Parameter(torch.zeros(d_model, rank))
        self.V = nn.Parameter(torch.zeros(rank, d_model))
        self.register_buffer("tau", torch.tensor(float(tau)))
        self.backend = backend
        self.key_norm = 1.0
        self.threshold = 0.0
        self.recorder: list[torch.Tensor] | None = None

    @property
    def rank(self) -> int:
        return int(self.G.shape[1])

    @property
    def gated(self) -> bool:
        return self.threshold > 0

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        """``[..., d] -> [..., d]``."""
        G, K, V = (p.to(a.dtype) for p in (self.G, self.K, self.V))
        out = side_glu(a, G, K, V, float(self.tau), self.backend)
        if not self.gated and self.recorder is None:
            return out
        norm = gate.activation_norm(a, self.G, self.K)  # [...], float32
        if self.recorder is not None:
            self.recorder.append(norm)
        return out * gate.gate(norm, self.threshold)[..., None].to(out.dtype) if self.gated else out

    @torch.no_grad()
    def clip_rows_(self, max_norm: float | None = None) -> None:
        """Clip each unit's gate and key vectors (columns of ``G``, ``K``) to norm
        ``<= max_norm`` (default ``key_norm``).

        The value vectors are left free: ``tau`` already puts the output on the
        host's scale, and clipping them too kept the memory from storing
        anything (measured: loss stuck at 5.7 on 4 facts vs 0.6 without).
        """
        bound = self.key_norm if max_norm is None else max_norm
        for weight in (self.G, self.K):
            norms = weight.norm(dim=0, keepdim=True).clamp_min(bound)
            weight.mul_(bound / norms)


class MemoryMLP(nn.Module):
    """A host FFN with side memories attached in parallel."""

    def __init__(self, host: nn.Module) -> None:
        super().__init__()
        self.host = host
        self.memories = nn.ModuleDict()
        self.enabled = True

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        out = self.host(a)
        if self.enabled:
            for memory in self.memories.values():
                out = out + memory(a)
        return out


@contextmanager
def memories_enabled(model: Any, enabled: bool) -> Iterator[None]:
    """Temporarily switch every attached memory on or off (off = the frozen host)."""
    wrappers = [layer.mlp for layer in decoder_layers(model) if isinstance(layer.mlp, MemoryMLP)]
    before = [w.enabled for w in wrappers]
    for wrapper in wrappers:
        wrapper.enabled = enabled
    try:
        yield
    finally:
        for wrapper, state in zip(wrappers, before, strict=True):
            wrapper.enabled = state


def decoder_layers(model: Any) -> Any:
    """The decoder layers of a Llama-style causal LM."""
    inner = getattr(model, "model", model)
    layers = getattr(inner, "layers", None)
    if layers is None:
        raise InvalidInputError("model has no .model.layers: not a Llama-style decoder")
    return layers


def host_mlp(layer: Any) -> Any:
    mlp = layer.mlp
    host = mlp.host if isinstance(mlp, MemoryMLP) else mlp
    if not all(hasattr(host, name) for name in ("gate_proj", "up_proj", "down_proj")):
        raise InvalidInputError("layer FFN is not gated (needs gate_proj, up_proj, down_proj)")
    return host


def tau_for(host: Any, rank: int) -> float:
    """``mean_j ||W_down[:, j]|| / r``: the mean norm of the host's unit output vectors over r."""
    return float(host.down_proj.weight.norm(dim=0).mean() / rank)


@torch.no_grad()
def principled_memory(
    host: Any, activations: torch.Tensor, rank: int, backend: str = "auto"
) -> SideGLU:
    """A side memory initialized from the host's most active units on ``activations [N, d]``."""
    a = activations.reshape(-1, activations.shape[-1]).to(host.gate_proj.weight.dtype)
    act = nn.functional.silu(host.gate_proj(a)) * host.up_proj(a)  # [N, inter]
    scores = act.abs().mean(dim=0)  # [inter]
    if rank > scores.shape[0]:
        raise InvalidInputError(f"rank={rank} exceeds the host's {scores.shape[0]} units")
    top = torch.topk(scores, rank).indices
    memory = SideGLU(a.shape[-1], rank, tau_for(host, rank), backend)
    memory.key_norm = key_norm_for(host)
    gate, up = host.gate_proj.weight[top], host.up_proj.weight[top]  # [r, d]
    for param, rows in ((memory.G, gate), (memory.K, up)):
        unit = rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-12)
        param.copy_(unit.t() * memory.key_norm)
    return memory.to(host.gate_proj.weight.device)


def key_norm_for(host: Any) -> float:
    """The mean norm of the host's gate and up rows: the bound on a memory unit's vectors.

    Measured at 30 facts: clipped to 1 instead (about a quarter of the host's
    ~4.5), the memory units stayed in SiLU's near-linear range and learned
    values slowly (loss 0.22 after 150 steps).
    """
    rows = torch.cat([host.gate_proj.weight, host.up_proj.weight]).detach().norm(dim=1)
    return float(rows.mean())


def attach(model: Any, name: str, memories: dict[int, SideGLU]) -> None:
    """Attach side memories (layer index → memory) under ``name``."""
    layers = decoder_layers(model)
    for index, memory in memories.items():
        layer = layers[index]
        if not isinstance(layer.mlp, MemoryMLP):
            layer.mlp = MemoryMLP(layer.mlp)
        if name in layer.mlp.memories:
            raise InvalidInputError(f"layer {index} already has a memory named {name!r}")
        layer.mlp.memories[name] = memory


def detach(model: Any, name: str) -> dict[int, SideGLU]:
    """Remove the memories called ``name`` (offload); returns them by layer."""
    removed: dict[int, SideGLU] = {}
    for index, layer in enumerate(decoder_layers(model)):
        if isinstance(layer.mlp, MemoryMLP) and name in layer.mlp.memories:
            removed[index] = layer.mlp.memories.pop(name)  # type: ignore[assignment]
            if not layer.mlp.memories:
                layer.mlp = layer.mlp.host
    return removed


def attached(model: Any) -> dict[str, list[int]]:
    """Names of attached memories and the layers each sits on."""
    names: dict[str, list[int]] = {}
    for index, layer in enumerate(decoder_layers(model)):
        if isinstance(layer.mlp, MemoryMLP):
            for name in layer.mlp.memories:
                names.setdefault(name, []).append(index)
    return names


def refuse_gated(names: Sequence[str], drop_gates: bool) -> None:
    """Raise unless ``drop_gates`` when any of the named memories is gated: the host FFN
    has no gate, so a merged memory speaks on every token."""
    if names and not drop_gates:
        raise InvalidInputError(
            f"gated memories cannot merge exactly ({', '.join(sorted(names))}): the host FFN "
            "has no gate; pass drop_gates=True (CLI: --drop-gates) to merge them ungated"
        )


@torch.no_grad()
def merge(model: Any, names: Iterable[str] | None = None, drop_gates: bool = False) -> int:
    """Permanentize memories into the host FFNs; returns the units added per layer.

    Every layer grows by the same number of units (zeros where a layer has no
    memory), and ``config.intermediate_size`` follows, so the merged model
    saves and loads as a plain transformers model. An ungated memory merges
    exactly. A gated one merges as if ungated (the host FFN has no gate), so
    it speaks on every token after the merge: that takes ``drop_gates=True``.
    """
    layers = decoder_layers(model)
    wanted = set(attached(model)) if names is None else set(names)
    per_layer: list[list[Any]] = [
        [m for n, m in layer.mlp.memories.items() if n in wanted]
        if isinstance(layer.mlp, MemoryMLP)
        else []
        for layer in layers
    ]
    gated = {
        n
        for layer in layers
        if isinstance(layer.mlp, MemoryMLP)
        for n, m in layer.mlp.memories.items()
        if n in wanted and m.gated
    }
    refuse_gated(sorted(gated), drop_gates)
    width = max((sum(m.rank for m in ms) for ms in per_layer), default=0)
    if width == 0:
        return 0
    for layer, memories in zip(layers, per_layer, strict=True):
        _grow(host_mlp(layer), memories, width)
    for name in wanted:
        detach(model, name)
    model.config.intermediate_size = int(model.config.intermediate_size) + width
    return width


def _grow(host: Any, memories: list[SideGLU], width: int) -> None:
    weight = host.gate_proj.weight
    d = weight.shape[1]
    gate = torch.zeros(width, d, dtype=weight.dtype, device=weight.device)  # [width, d]
    up, down = (
        torch.zeros_like(gate),
        torch.zeros(d, width, dtype=weight.dtype, device=weight.device),
    )
    start = 0
    for memory in memories:
        stop = start + memory.rank
        gate[start:stop] = memory.G.t()
        up[start:stop] = memory.K.t()
        down[:, start:stop] = (memory.V * memory.tau).t()
        start = stop
    _append(host.gate_proj, gate, dim=0)
    _append(host.up_proj, up, dim=0)
    _append(host.down_proj, down, dim=1)


def _append(linear: Any, extra: torch.Tensor, dim: int) -> None:
    if linear.bias is not None and dim == 0:
        linear.bias = nn.Parameter(torch.cat([linear.bias, linear.bias.new_zeros(extra.shape[0])]))
    linear.weight = nn.Parameter(torch.cat([linear.weight, extra], dim=dim))
    linear.out_features, linear.in_features = linear.weight.shape
