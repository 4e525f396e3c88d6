"""Artifacts in a shared store: written whole, read only when their digest holds,
deleted everywhere, and a bad store refused at start.

The store is a real S3-compatible server (moto's server mode) on 127.0.0.1;
``file://`` folders are checked too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from helpers import open_memos
from memos.cli.main import app
from s3_helpers import BUCKET, S3_ENV
from typer.testing import CliRunner

from memos.errors import ConfigError
from memos.store.artifact_files import ArtifactFiles
from memos.store.files import file_digest


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for name, value in S3_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MEMOS_S3_ENDPOINT_URL", s3_endpoint)
    return s3_endpoint


def _written(home: Path, recorded: str, content: bytes) -> str:
    path = home / recorded
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return file_digest(path)


@pytest.mark.parametrize("scheme", ["s3", "file"])
def test_a_put_artifact_is_fetched_verified_by_another_home(
    s3: str, tmp_path: Path, scheme: str
) -> None:
    url = f"s3://{BUCKET}/{tmp_path.name}" if scheme == "s3" else f"file://{tmp_path / 'shared'}"
    writer = ArtifactFiles(tmp_path / "a", url)
    reader = ArtifactFiles(tmp_path / "b", url)
    recorded = "kv/cube-1/snap.safetensors"
    digest = _written(tmp_path / "a", recorded, b"kv tensors" * 1000)
    writer.put(recorded)
    fetched = reader.fetch(recorded, digest)
    assert fetched == tmp_path / "b" / recorded and fetched.read_bytes() == b"kv tensors" * 1000
    # a local copy that was altered is replaced by the store's, checked again
    fetched.write_bytes(b"tampered")
    assert reader.fetch(recorded, digest) is not None and fetched.read_bytes()[:10] == b"kv tensors"
    # a digest the store's bytes do not have gives nothing, and leaves nothing behind
    assert reader.fetch(recorded, "blake3:" + "0" * 64) is None
    assert sorted(p.name for p in fetched.parent.iterdir()) == ["snap.safetensors"]
    # delete removes every copy
    reader.delete(recorded)
    assert not fetched.exists() and writer.fetch(recorded, digest) is not None
    writer.delete(recorded)
    assert ArtifactFiles(tmp_path / "c", url).fetch(recorded, digest) is None


def test_an_s3_object_is_never_seen_half_written(s3: str, tmp_path: Path) -> None:
    import boto3

    files = ArtifactFiles(tmp_path / "a", f"s3://{BUCKET}/atomic")
    recorded = "adapters/c/big.safetensors"
    digest = _written(tmp_path / "a", recorded, os.urandom(6 * 2**20))  # a multipart upload
    client = boto3.client("s3", endpoint_url=s3)
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix="atomic/")
    assert listed.get("KeyCount", 0) == 0
    files.put(recorded)
    head = client.head_object(Bucket=BUCKET, Key=f"atomic/{recorded}")
    assert head["ContentLength"] == 6 * 2**20
    assert ArtifactFiles(tmp_path / "b", f"s3://{BUCKET}/atomic").fetch(recorded, digest)


def test_a_purge_deletes_the_shared_copies_of_what_was_built_from_it(
    s3: str, tmp_path: Path, lm: Any
) -> None:
    url = f"s3://{BUCKET}/purge"
    mem = open_memos(tmp_path / "home", lm=lm, artifacts=url)
    record = mem.add("Ines hides the spare key in the garden gnome", cube="p")
    snapshot = mem.build_snapshot("p", max_tokens=64)
    recorded = str(Path(snapshot.path).relative_to(tmp_path / "home"))
    digest = _digest(mem, snapshot.id)
    assert ArtifactFiles(tmp_path / "elsewhere", url).fetch(recorded, digest) is not None
    mem.purge(record.id)
    assert ArtifactFiles(tmp_path / "third", url).fetch(recorded, digest) is None
    assert not (tmp_path / "home" / recorded).exists()
    import boto3

    keys = boto3.client("s3", endpoint_url=s3).list_objects_v2(Bucket=BUCKET, Prefix="purge/")
    assert keys.get("KeyCount", 0) == 0
    mem.close()


def _digest(mem: Any, artifact_id: str) -> str:
    from memos.store import artifacts

    return artifacts.digest_of(mem.db, artifact_id)


def test_a_missing_bucket_or_an_unreachable_store_fails_serve_at_start(
    s3: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    runner = CliRunner()
    monkeypatch.setenv("MEMOS_EMBEDDER", "hashing")
    monkeypatch.setenv("MEMOS_ARTIFACTS", "s3://no-such-bucket/prefix")
    missing = runner.invoke(app, ["--home", str(home), "serve", "--port", "1"])
    assert missing.exit_code == 1 and "does not exist" in missing.output
    assert len(missing.output.strip().splitlines()) == 1
    monkeypatch.setenv("MEMOS_ARTIFACTS", f"s3://{BUCKET}/x")
    monkeypatch.setenv("MEMOS_S3_ENDPOINT_URL", "http://127.0.0.1:9")
    down = runner.invoke(app, ["--home", str(home), "serve", "--port", "1"])
    assert down.exit_code == 1 and "unreachable" in down.output
    with pytest.raises(ConfigError, match="allowed"):
        open_memos(tmp_path / "h2", artifacts="ftp://x")


def test_the_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from memos.config import MemosConfig

    monkeypatch.setenv("MEMOS_ARTIFACTS", "s3://b/p")
    monkeypatch.setenv("MEMOS_JOBS", "ray://10.0.0.1:10001")
    monkeypatch.setenv("MEMOS_INDEX_CACHE_MB", "64")
    config = MemosConfig.from_env()
    assert (config.artifacts, config.jobs, config.index_cache_mb) == (
        "s3://b/p",
        "ray://10.0.0.1:10001",
        64.0,
    )
    monkeypatch.setenv("MEMOS_INDEX_CACHE_MB", "lots")
    with pytest.raises(ConfigError, match="MEMOS_INDEX_CACHE_MB"):
        MemosConfig.from_env()
