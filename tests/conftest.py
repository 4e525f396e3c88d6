"""Shared fixtures: isolated homes, the hashing embedder, a throwaway PostgreSQL."""

from __future__ import annotations

import os

import torch

# Without CUDA, Triton kernels run under the interpreter; it must be set before
# the kernels are defined (memos.kernels reads it at import). With CUDA the
# tests run the real compiled kernels.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import HashingEmbedder, open_memos
from pg import create_database, pg_bin, postgres_server

from memos.client import Memos


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test ever touches ~/.memos or a user's MEMOS_* settings."""
    monkeypatch.setenv("MEMOS_HOME", str(tmp_path / "home"))
    for var in ("MEMOS_DATABASE_URL", "MEMOS_EMBEDDER", "MEMOS_INDEX_KIND"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def embedder() -> HashingEmbedder:
    return HashingEmbedder()


@pytest.fixture
def mem(tmp_path: Path) -> Iterator[Memos]:
    """A Memos on SQLite with the hashing embedder and a manual clock."""
    memos = open_memos(tmp_path / "mem")
    yield memos
    memos.close()


@pytest.fixture(scope="session")
def real_embedder():  # type: ignore[no-untyped-def]
    """The default all-MiniLM-L6-v2 embedder, loaded once per session."""
    from memos.plaintext.embedder import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


@pytest.fixture(scope="session")
def lm():  # type: ignore[no-untyped-def]
    """The default language model (SmolLM2-135M-Instruct), converted once per session.

    Tests that change its weights must put them back.
    """
    from memos.lm import load_lm

    return load_lm("default", Path(tempfile.mkdtemp(prefix="memos-lm-")))


# -- an S3-compatible store ----------------------------------------------------------


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 with the artifacts bucket (its endpoint URL)."""
    from s3_helpers import s3_server

    try:
        with s3_server() as endpoint:
            yield endpoint
    except ImportError as exc:
        pytest.skip(f"the S3 test server (moto[s3], flask, boto3) is not installed: {exc}")


# -- PostgreSQL ------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on 127.0.0.1; yields its base URL."""
    bin_dir = pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL binaries not found under /usr/lib/postgresql: skipping PG tests")
    with postgres_server(bin_dir) as url:
        yield url


@pytest.fixture
def pg_url(pg_server: str) -> str:
    """A fresh, empty database on the throwaway server."""
    return create_database(pg_server)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def any_mem(db_url: str, tmp_path: Path) -> Iterator[Memos]:
    """A Memos on SQLite or PostgreSQL (parametrized)."""
    memos = open_memos(tmp_path / "home", db_url)
    yield memos
    memos.close()
