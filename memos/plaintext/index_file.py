"""The dense index file's header: what a file must match to be used, read
without FAISS (``memos stats`` peeks at it instead of loading the index).

The file is a safetensors archive: the serialized FAISS index (``index``),
its label map (``labels``, ``alive``) and metadata: format, cube id, embedder
fingerprint, dimension, index kind, cube revision and the index bytes' SHA-256.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memos.errors import IndexFileError

FORMAT_VERSION = "1"


@dataclass(frozen=True)
class IndexIdentity:
    """What an index file must match to be used."""

    cube_id: str
    fingerprint: str
    dim: int
    kind: str


def peek(path: Path, identity: IndexIdentity) -> tuple[int, int] | None:
    """Live entries and revision of the index file at ``path``, or ``None`` when
    it is missing or not a whole file built for ``identity``."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            meta = handle.metadata() or {}
            blob = handle.get_tensor("index")
            alive = handle.get_tensor("alive")
        check_meta(path, meta, identity, blob)
    except Exception:  # a torn file raises safetensors' own errors; any failure means "load it"
        return None
    return int(np.count_nonzero(alive)), int(meta["revision"])


def check_meta(path: Path, meta: dict[str, str], identity: IndexIdentity, blob: np.ndarray) -> None:
    """Raise ``IndexFileError`` unless the file's header matches ``identity`` and
    its index bytes their checksum."""
    expected = {
        "format": FORMAT_VERSION,
        "cube_id": identity.cube_id,
        "fingerprint": identity.fingerprint,
        "dim": str(identity.dim),
        "kind": identity.kind,
    }
    for key, value in expected.items():
        if meta.get(key) != value:
            raise IndexFileError(f"{path}: {key} is {meta.get(key)!r}, expected {value!r}")
    if hashlib.sha256(blob.tobytes()).hexdigest() != meta.get("index_sha256"):
        raise IndexFileError(f"{path}: index bytes do not match their checksum")
    if not meta.get("revision", "").isdigit():
        raise IndexFileError(f"{path}: no revision recorded")
