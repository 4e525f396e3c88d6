"""The FAISS index against brute force on seeded data: ids exact, scores to 1e-4."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memos.errors import IndexFileError
from memos.plaintext.dense_index import DenseIndex, IndexIdentity


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _brute(vectors: dict[int, np.ndarray], query: np.ndarray, k: int) -> list[tuple[int, float]]:
    pks = np.array(list(vectors))
    scores = np.stack(list(vectors.values())) @ query
    order = np.lexsort((pks, -scores))[:k]
    return [(int(pks[i]), float(scores[i])) for i in order]


def _check(index: DenseIndex, vectors: dict[int, np.ndarray], queries: np.ndarray, k: int) -> None:
    for query in queries:
        got = index.search(query, k)
        want = _brute(vectors, query, k)
        assert [pk for pk, _ in got] == [pk for pk, _ in want]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=1e-4)


IDENTITY = IndexIdentity("cube-1", "hash:32", 32, "flat")


@pytest.mark.parametrize(("n", "k"), [(1, 1), (9, 5), (257, 10), (1000, 20)])
def test_flat_matches_brute_force(n: int, k: int) -> None:
    rng = np.random.default_rng(n)
    vectors = dict(zip(range(100, 100 + n), _unit(rng, n, 32), strict=True))
    index = DenseIndex(IDENTITY)
    index.upsert(list(vectors), np.stack(list(vectors.values())))
    _check(index, vectors, _unit(rng, 5, 32), k)


def test_updates_and_removals_match_brute_force() -> None:
    rng = np.random.default_rng(7)
    vectors = dict(enumerate(_unit(rng, 600, 32)))
    index = DenseIndex(IDENTITY)
    index.upsert(list(vectors), np.stack(list(vectors.values())))
    changed = {pk: v for pk, v in zip(range(0, 600, 3), _unit(rng, 200, 32), strict=True)}
    index.upsert(list(changed), np.stack(list(changed.values())))
    vectors.update(changed)
    removed = list(range(1, 600, 2))
    index.remove(removed)
    for pk in removed:
        vectors.pop(pk)
    assert len(index) == len(vectors)
    _check(index, vectors, _unit(rng, 5, 32), 10)
    index.compact()
    assert index.dead == 0
    _check(index, vectors, _unit(rng, 5, 32), 10)


def test_allowed_subset_small_and_large() -> None:
    rng = np.random.default_rng(3)
    vectors = dict(enumerate(_unit(rng, 6000, 32)))
    index = DenseIndex(IDENTITY)
    index.upsert(list(vectors), np.stack(list(vectors.values())))
    query = _unit(rng, 1, 32)[0]
    for allowed in (set(range(0, 6000, 97)), set(range(0, 6000, 2))):
        got = index.search(query, 10, allowed)
        want = _brute({pk: vectors[pk] for pk in allowed}, query, 10)
        assert [pk for pk, _ in got] == [pk for pk, _ in want]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=1e-4)


def test_hnsw_recall_is_high() -> None:
    rng = np.random.default_rng(11)
    vectors = dict(enumerate(_unit(rng, 3000, 32)))
    index = DenseIndex(IndexIdentity("c", "f", 32, "hnsw"))
    index.upsert(list(vectors), np.stack(list(vectors.values())))
    index.remove(range(0, 3000, 5))
    for pk in range(0, 3000, 5):
        vectors.pop(pk)
    hits = 0
    queries = _unit(rng, 20, 32)
    for query in queries:
        got = {pk for pk, _ in index.search(query, 10)}
        hits += len(got & {pk for pk, _ in _brute(vectors, query, 10)})
    assert hits / (10 * len(queries)) >= 0.9


def test_save_load_roundtrip(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    index = DenseIndex(IDENTITY)
    index.upsert([3, 4, 5], _unit(rng, 3, 32))
    index.remove([4])
    index.revision = 17
    path = tmp_path / "i.safetensors"
    index.save(path)
    loaded = DenseIndex.load(path, IDENTITY)
    assert loaded.revision == 17 and loaded.pks() == {3, 5}
    query = _unit(rng, 1, 32)[0]
    assert loaded.search(query, 2) == index.search(query, 2)
    assert not list(tmp_path.glob(".*tmp"))


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "missing"])
def test_damaged_files_are_detected(tmp_path: Path, damage: str) -> None:
    index = DenseIndex(IDENTITY)
    index.upsert(range(50), _unit(np.random.default_rng(1), 50, 32))
    path = tmp_path / "i.safetensors"
    index.save(path)
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        data[-40] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "garbage":
        path.write_bytes(b"not an index at all")
    else:
        path.unlink()
    with pytest.raises(IndexFileError):
        DenseIndex.load(path, IDENTITY)


def test_identity_mismatch_is_detected(tmp_path: Path) -> None:
    index = DenseIndex(IDENTITY)
    index.upsert([1], _unit(np.random.default_rng(1), 1, 32))
    path = tmp_path / "i.safetensors"
    index.save(path)
    with pytest.raises(IndexFileError, match="fingerprint"):
        DenseIndex.load(path, IndexIdentity("cube-1", "other:32", 32, "flat"))
