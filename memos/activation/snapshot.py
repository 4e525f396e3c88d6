"""KV-cache snapshots: one prefill of a memory block, saved and restored exactly.

A snapshot file is a safetensors archive with the key and value tensors of
every layer (``k.<i>``, ``v.<i>``, each ``[1, kv_heads, T, head_dim]``) and
metadata: model fingerprint, SHA-256 of the token ids, token count, layer
count, stored dtype. Files are written to a temporary name and renamed into
place; the artifact row keeps the file's digest, which is checked before a
snapshot is used, so a truncated or altered file is never loaded.

Restoring always builds a fresh cache that holds the snapshot as an immutable
prefix and puts new tokens in a tail of its own, so generation can never grow
or mutate a stored snapshot (MemOS issue #2301).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memos.errors import InvalidInputError, SnapshotError
from memos.fields import SNAPSHOT_DTYPES
from memos.store.files import atomic_path, digest_matches, file_digest

# Files whose bytes matched their SHA-256, by (path, inode, size, mtime_ns).
_VERIFIED: dict[tuple[str, int, int, int], str] = {}
_VERIFIED_LOCK = threading.Lock()


@dataclass(frozen=True)
class Snapshot:
    """A KV cache in memory with what it was built from."""

    tensors: dict[str, Any]  # k.<i> / v.<i> → [1, kv_heads, T, head_dim]
    token_ids: list[int]
    fingerprint: str
    dtype: str

    @property
    def tokens(self) -> int:
        return len(self.token_ids)


def token_hash(token_ids: list[int]) -> str:
    return hashlib.sha256(json.dumps(token_ids).encode()).hexdigest()


def prefill(lm: Any, token_ids: list[int], dtype: str = "float32") -> Snapshot:
    """Run one prefill of ``token_ids`` and capture the KV cache (optionally down-cast)."""
    import torch

    if dtype not in SNAPSHOT_DTYPES:
        raise InvalidInputError(f"dtype={dtype!r}; allowed: {', '.join(SNAPSHOT_DTYPES)}")
    ids = torch.tensor([token_ids], device=lm.device)  # [1, T]
    with torch.inference_mode():
        _, cache = lm.forward(ids)
    target = getattr(torch, dtype)
    tensors: dict[str, Any] = {}
    for i, layer in enumerate(cache.layers):
        tensors[f"k.{i}"] = layer.keys.detach().to("cpu", target).contiguous()
        tensors[f"v.{i}"] = layer.values.detach().to("cpu", target).contiguous()
    return Snapshot(tensors, list(token_ids), lm.fingerprint, dtype)


def restore(lm: Any, snapshot: Snapshot) -> Any:
    """A fresh cache that continues from the snapshot (see :mod:`memos.activation.prefix_cache`).

    Full-attention layers hold the snapshot's tensors as an immutable prefix,
    in their stored dtype, with no copy: a request never writes into or grows
    the snapshot (a test guards this), and a ``bfloat16`` or ``float16``
    snapshot is attended in that dtype. Other layers (sliding windows) get a
    copy in the model's dtype and keep their own bookkeeping.
    """
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    from memos.activation.prefix_cache import prefix_layer_type

    cache = DynamicCache(config=lm.model.config)
    prefix_layer = prefix_layer_type()
    for i in range(len(snapshot.tensors) // 2):
        keys = snapshot.tensors[f"k.{i}"].to(lm.device)  # [1, kv_heads, T, head_dim]
        values = snapshot.tensors[f"v.{i}"].to(lm.device)
        layer = cache.layers[i] if i < len(cache.layers) else None
        if type(layer) is DynamicLayer:
            cache.layers[i] = prefix_layer(keys, values, lm.dtype)
        else:
            cache.update(keys.to(lm.dtype), values.to(lm.dtype), i)
    return cache


def save(snapshot: Snapshot, path: Path, extra: dict[str, str] | None = None) -> tuple[str, int]:
    """Write ``snapshot`` atomically; returns (the file's digest, byte size)."""
    from safetensors.torch import save_file

    meta = {
        "fingerprint": snapshot.fingerprint,
        "token_hash": token_hash(snapshot.token_ids),
        "token_ids": json.dumps(snapshot.token_ids),
        "tokens": str(snapshot.tokens),
        "layers": str(len(snapshot.tensors) // 2),
        "dtype": snapshot.dtype,
        **(extra or {}),
    }
    with atomic_path(path) as tmp:
        save_file(snapshot.tensors, str(tmp), metadata=meta)
        digest, size = file_digest(tmp), tmp.stat().st_size
    return digest, size


def load(path: Path, digest: str, fingerprint: str) -> Snapshot:
    """Read a snapshot, checking its bytes against ``digest`` and its model.

    The bytes are hashed through a memory map on first use in this process,
    and again whenever the file's inode, size or modification time changes;
    tensors are read with safetensors, so the file is never copied whole into
    Python.

    Raises:
        SnapshotError: missing, altered, truncated, or made by another model.
    """
    from safetensors import safe_open

    _verify(path, digest)
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = dict(handle.metadata() or {})
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except Exception as exc:  # safetensors raises several types on bad input
        raise SnapshotError(f"snapshot {path} is unreadable: {exc}") from None
    if meta.get("fingerprint") != fingerprint:
        raise SnapshotError(
            f"snapshot {path} was made by model {meta.get('fingerprint')!r}, not {fingerprint!r}"
        )
    token_ids = json.loads(meta["token_ids"])
    if token_hash(token_ids) != meta.get("token_hash"):
        raise SnapshotError(f"snapshot {path}: token ids do not match their hash")
    return Snapshot(tensors, token_ids, fingerprint, meta["dtype"])


def forget_verified() -> None:
    """Forget which files were checked, so the next use of each checks it again."""
    with _VERIFIED_LOCK:
        _VERIFIED.clear()


def _verify(path: Path, digest: str) -> None:
    try:
        info = path.stat()
        key = (str(path), info.st_ino, info.st_size, info.st_mtime_ns)
        with _VERIFIED_LOCK:
            if _VERIFIED.get(key) == digest:
                return
        matches = digest_matches(path, digest)
    except (OSError, ValueError) as exc:
        raise SnapshotError(f"snapshot {path} cannot be read: {exc}") from None
    if not matches:
        raise SnapshotError(f"snapshot {path} does not match its recorded digest")
    with _VERIFIED_LOCK:
        _VERIFIED[key] = digest
