"""Shared fixtures: isolated homes, the hashing embedder, a throwaway PostgreSQL."""

from __future__ import annotations

import os

import torch

# Without CUDA, Triton kernels run under the interpreter; it must be set before
# the kernels are defined (memos.kernels reads it at import). With CUDA the
# tests run the real compiled kernels.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import HashingEmbedder, open_memos

from memos.client import Memos

PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"


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


# -- PostgreSQL ------------------------------------------------------------------


def _pg_bin() -> Path | None:
    import glob

    found = sorted(glob.glob(PG_BIN_GLOB))
    return Path(found[-1]) if found and (Path(found[-1]) / "initdb").exists() else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on 127.0.0.1; yields its base URL."""
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL binaries not found under /usr/lib/postgresql: skipping PG tests")
    root = Path(tempfile.mkdtemp(prefix="memos-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    port = _free_port()
    subprocess.run(
        _as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]),
        check=True,
        capture_output=True,
    )
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off"
    subprocess.run(
        _as_postgres(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-w",
                "-l",
                str(root / "log"),
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(
            _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server: str) -> str:
    """A fresh, empty database on the throwaway server."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    dsn = pg_server.replace("postgresql+psycopg://", "postgresql://") + "/postgres"
    for _ in range(50):
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {name}")
            break
        except psycopg.OperationalError:
            time.sleep(0.1)
    return f"{pg_server}/{name}"


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
