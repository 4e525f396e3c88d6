"""The dense channel: a FAISS index of one cube, persisted as one file.

Vectors are L2-normalized, so inner product is cosine similarity. FAISS
positions ("labels") map to item primary keys; an update adds the new vector
under a new label and marks the old one dead, a delete marks it dead, and the
index compacts itself when too much of it is dead. This works the same for
the exact flat index and for HNSW (which cannot remove vectors).

The file is a safetensors archive holding the serialized FAISS index, the
label map and metadata (embedder fingerprint, cube revision, SHA-256 of the
index bytes); it is written to a temporary name and renamed into place.
"""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

FORMAT_VERSION = "1"
_COMPACT_MIN_DEAD = 256
_COMPACT_DEAD_SHARE = 0.25
_EXACT_BELOW = 4096


class IndexFileError(Exception):
    """An index file is missing, truncated, altered or built for something else."""


@dataclass(frozen=True)
class IndexIdentity:
    """What an index file must match to be used."""

    cube_id: str
    fingerprint: str
    dim: int
    kind: str


class DenseIndex:
    """FAISS inner-product index over item vectors, with a label → item-pk map.

    Args:
        identity: cube, embedder fingerprint, dimension and index kind.
        hnsw_m: graph degree when ``identity.kind == "hnsw"``.
    """

    def __init__(self, identity: IndexIdentity, hnsw_m: int = 32) -> None:
        self.identity = identity
        self.hnsw_m = hnsw_m
        self.revision = 0
        self.lock = threading.RLock()
        self._faiss = self._new_faiss()
        self._label_pk = np.zeros(0, dtype=np.int64)  # [N] item pk of each label
        self._alive = np.zeros(0, dtype=bool)  # [N]
        self._pk_label: dict[int, int] = {}
        self._moments: tuple[np.ndarray, np.ndarray] | None = None  # Σv [dim], Σvvᵀ [dim, dim]
        self.unsaved = 0

    def __len__(self) -> int:
        return len(self._pk_label)

    @property
    def dead(self) -> int:
        return int(self._label_pk.shape[0] - len(self._pk_label))

    def pks(self) -> set[int]:
        """Item pks currently held."""
        return set(self._pk_label)

    def upsert(self, pks: Iterable[int], vectors: np.ndarray) -> None:
        """Add or replace the vectors ``[n, dim]`` of items ``pks``."""
        pk_list = [int(pk) for pk in pks]
        if not pk_list:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(pk_list), -1)
        with self.lock:
            self._kill(pk_list)
            start = self._label_pk.shape[0]
            self._faiss.add(vectors)
            if self._moments is not None:
                self._shift_moments(vectors, +1.0)
            self._label_pk = np.concatenate([self._label_pk, np.asarray(pk_list, np.int64)])
            self._alive = np.concatenate([self._alive, np.ones(len(pk_list), dtype=bool)])
            for offset, pk in enumerate(pk_list):
                self._pk_label[pk] = start + offset
            self.unsaved += len(pk_list)
            self._maybe_compact()

    def remove(self, pks: Iterable[int]) -> None:
        """Forget the vectors of items ``pks`` (unknown pks are ignored)."""
        with self.lock:
            self._kill([int(pk) for pk in pks])
            self._maybe_compact()

    def search(
        self, query: np.ndarray, k: int, allowed: Iterable[int] | None = None
    ) -> list[tuple[int, float]]:
        """Best ``k`` (item pk, cosine) pairs for ``query`` ``[dim]``.

        Args:
            allowed: restrict to these item pks (``None``: all).
        """
        with self.lock:
            if not self._pk_label or k <= 0:
                return []
            query = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
            if allowed is not None:
                chosen = np.asarray(
                    [self._pk_label[pk] for pk in allowed if pk in self._pk_label], dtype=np.int64
                )
                if chosen.size <= _EXACT_BELOW:
                    return self._exact(query, chosen, k)
                mask = np.zeros(self._label_pk.shape[0], dtype=bool)
                mask[chosen] = True
                return self._selected(query, k, mask)
            if self.dead:
                return self._selected(query, k, self._alive)
            scores, labels = self._faiss.search(query, min(k, len(self._pk_label)))
            return self._pairs(scores[0], labels[0])

    def score_stats(self, query: np.ndarray) -> tuple[float, float]:
        """Mean and standard deviation of ``query · v`` over every live vector.

        Kept exact from the first and second moments of the vectors (updated on
        each change), so a search can standardize its scores over the whole
        cube while FAISS returns only the best few.
        """
        with self.lock:
            n = len(self._pk_label)
            if not n:
                return 0.0, 0.0
            if self._moments is None:
                self._moments = (
                    np.zeros(self.identity.dim),
                    np.zeros((self.identity.dim, self.identity.dim)),
                )
                self._shift_moments(self._faiss.reconstruct_batch(np.flatnonzero(self._alive)), 1)
            total, gram = self._moments
            q = np.asarray(query, dtype=np.float64).reshape(-1)  # [dim]
            mean = float(q @ total) / n
            return mean, float(np.sqrt(max(float(q @ gram @ q) / n - mean * mean, 0.0)))

    def _shift_moments(self, vectors: np.ndarray, sign: float) -> None:
        assert self._moments is not None
        v = np.asarray(vectors, dtype=np.float64).reshape(-1, self.identity.dim)  # [m, dim]
        self._moments[0][:] += sign * v.sum(0)
        self._moments[1][:] += sign * (v.T @ v)

    def _exact(self, query: np.ndarray, labels: np.ndarray, k: int) -> list[tuple[int, float]]:
        if labels.size == 0:
            return []
        vectors = self._faiss.reconstruct_batch(labels)  # [m, dim]
        scores = vectors @ query[0]  # [m]
        order = np.argsort(-scores, kind="stable")[:k]
        return [(int(self._label_pk[labels[i]]), float(scores[i])) for i in order]

    def _selected(self, query: np.ndarray, k: int, mask: np.ndarray) -> list[tuple[int, float]]:
        bits = np.packbits(mask, bitorder="little")  # must outlive the search
        selector = faiss.IDSelectorBitmap(mask.shape[0], faiss.swig_ptr(bits))
        if self.identity.kind == "hnsw":
            hnsw_params: Any = faiss.SearchParametersHNSW  # type: ignore[attr-defined]
            params: Any = hnsw_params(sel=selector, efSearch=max(64, 2 * k))
        else:
            params = faiss.SearchParameters(sel=selector)  # type: ignore[call-arg]
        scores, labels = self._faiss.search(query, min(k, int(mask.sum())), params=params)
        return self._pairs(scores[0], labels[0])

    def _pairs(self, scores: np.ndarray, labels: np.ndarray) -> list[tuple[int, float]]:
        return [
            (int(self._label_pk[label]), float(score))
            for score, label in zip(scores, labels, strict=True)
            if label >= 0 and self._alive[label]
        ]

    def _kill(self, pks: list[int]) -> None:
        killed = []
        for pk in pks:
            label = self._pk_label.pop(pk, None)
            if label is not None:
                self._alive[label] = False
                self.unsaved += 1
                killed.append(label)
        if killed and self._moments is not None:
            self._shift_moments(self._faiss.reconstruct_batch(np.asarray(killed, np.int64)), -1)

    def _maybe_compact(self) -> None:
        total = self._label_pk.shape[0]
        if self.dead >= _COMPACT_MIN_DEAD and self.dead > _COMPACT_DEAD_SHARE * total:
            self.compact()

    def compact(self) -> None:
        """Rebuild the FAISS structure from live vectors only."""
        with self.lock:
            keep = np.flatnonzero(self._alive)
            vectors = self._faiss.reconstruct_batch(keep) if keep.size else None
            pks = self._label_pk[keep]
            self._faiss = self._new_faiss()
            self._label_pk = np.zeros(0, dtype=np.int64)
            self._alive = np.zeros(0, dtype=bool)
            self._pk_label = {}
            self._moments = None
            if vectors is not None:
                self.upsert(pks.tolist(), vectors)

    def _new_faiss(self) -> faiss.Index:
        dim = self.identity.dim
        if self.identity.kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 80
            index.hnsw.efSearch = 64
            return index
        return faiss.IndexFlatIP(dim)

    def save(self, path: Path) -> None:
        """Write the index atomically to ``path``."""
        from safetensors.numpy import save_file

        with self.lock:
            blob = faiss.serialize_index(self._faiss)  # [bytes] uint8
            tensors = {
                "index": blob,
                "labels": self._label_pk.copy(),
                "alive": self._alive.astype(np.uint8),
            }
            meta = {
                "format": FORMAT_VERSION,
                "cube_id": self.identity.cube_id,
                "fingerprint": self.identity.fingerprint,
                "dim": str(self.identity.dim),
                "kind": self.identity.kind,
                "revision": str(self.revision),
                "index_sha256": hashlib.sha256(blob.tobytes()).hexdigest(),
            }
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
            try:
                save_file(tensors, str(tmp), metadata=meta)
                with tmp.open("rb") as handle:
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
            self.unsaved = 0

    @classmethod
    def load(cls, path: Path, identity: IndexIdentity, hnsw_m: int = 32) -> DenseIndex:
        """Read an index file, checking it is whole and built for ``identity``.

        Raises:
            IndexFileError: missing, unreadable, altered, or built for another
                cube, embedder, dimension or index kind.
        """
        from safetensors import safe_open

        if not path.is_file():
            raise IndexFileError(f"{path} does not exist")
        try:
            with safe_open(str(path), framework="numpy") as handle:
                meta = handle.metadata() or {}
                blob = handle.get_tensor("index")
                labels = handle.get_tensor("labels")
                alive = handle.get_tensor("alive").astype(bool)
        except Exception as exc:  # safetensors raises several types on a torn file
            raise IndexFileError(f"{path} is unreadable: {exc}") from exc
        _check_meta(path, meta, identity, blob)
        index = cls(identity, hnsw_m)
        try:
            index._faiss = faiss.deserialize_index(blob)
        except Exception as exc:
            raise IndexFileError(f"{path}: FAISS could not read the index: {exc}") from exc
        if index._faiss.ntotal != labels.shape[0] or alive.shape != labels.shape:
            raise IndexFileError(f"{path}: label map does not match the index")
        index._label_pk, index._alive = labels.astype(np.int64), alive
        index._pk_label = {int(labels[i]): int(i) for i in np.flatnonzero(alive)}
        index.revision = int(meta["revision"])
        return index


def _check_meta(
    path: Path, meta: dict[str, str], identity: IndexIdentity, blob: np.ndarray
) -> None:
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
