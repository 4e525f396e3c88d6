"""Artifact file digests: BLAKE3 for new files, a former bare SHA-256 still checked."""

from __future__ import annotations

import hashlib
from pathlib import Path

import blake3
import pytest

from memos.store.files import digest_matches, file_digest


@pytest.mark.parametrize("size", [0, 1, 4096 * 3 + 7])
def test_digest_is_blake3_of_the_bytes(tmp_path: Path, size: int) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    digest = file_digest(path)
    assert digest == "blake3:" + blake3.blake3(data).hexdigest()
    assert digest_matches(path, digest)


def test_an_altered_or_truncated_file_does_not_match(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 1000)
    digest = file_digest(path)
    path.write_bytes(b"x" * 999 + b"y")
    assert not digest_matches(path, digest)
    path.write_bytes(b"x" * 999)
    assert not digest_matches(path, digest)


def test_a_recorded_sha256_is_still_checked_as_one(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"written before digests were BLAKE3")
    legacy = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest_matches(path, legacy)
    assert not digest_matches(path, hashlib.sha256(b"other").hexdigest())


def test_a_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        digest_matches(tmp_path / "gone.bin", "blake3:" + "0" * 64)
