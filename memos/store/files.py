"""Writing files so a crash leaves the old file or the new one, never a torn one,
and checking that a file is the one that was written.

Every artifact memos writes (index files, KV snapshots, adapters, exports)
goes through :func:`atomic_path`: written under a temporary name beside its
target, flushed to disk, renamed into place, and the folder flushed so the
rename itself survives a power loss.

An artifact's file is recorded with its digest (:func:`file_digest`), checked
before the file is used (:func:`digest_matches`). Digests are BLAKE3
(``blake3:<hex>``): a cryptographic hash several times faster than SHA-256
(45 MiB, a 2,000-token bfloat16 snapshot, on 2 CPU cores: see
``benchmarks/activation.py``), which a snapshot's first use in a process pays
before its first token. Rows written before hold a bare SHA-256, still checked
as such.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from memos.errors import PathError


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path to write ``path``'s new content to.

    On a clean exit the temporary file is fsynced and renamed over ``path``,
    then the folder is fsynced; on an error it is removed and ``path`` is
    untouched. A folder at ``path`` raises ``PathError``.
    """
    if path.is_dir():
        raise PathError(f"cannot write {path}: it is a folder; remove or rename it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def fsync_file(path: Path) -> None:
    """Flush a written file's bytes to disk."""
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename into it) to disk, where the OS allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders; the rename still happened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


DIGEST_PREFIX = "blake3:"


def file_digest(path: Path) -> str:
    """The digest an artifact's file is recorded with: ``blake3:<64 hex digits>``."""
    import blake3

    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    _feed(path, hasher.update)
    return DIGEST_PREFIX + hasher.hexdigest()


def digest_matches(path: Path, recorded: str) -> bool:
    """Whether the file's bytes have the recorded digest (BLAKE3, or a former bare SHA-256).

    Raises:
        OSError: the file cannot be read.
    """
    if recorded.startswith(DIGEST_PREFIX):
        return file_digest(path) == recorded
    legacy = hashlib.sha256()
    _feed(path, legacy.update)
    return legacy.hexdigest() == recorded


def _feed(path: Path, update: Callable[[Any], object]) -> None:
    """Pass a file's bytes to ``update`` through a memory map (never copied whole)."""
    with path.open("rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            update(b"")
            return
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as view:
            update(view)
