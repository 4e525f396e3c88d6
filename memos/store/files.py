"""Writing files so a crash leaves the old file or the new one, never a torn one.

Every artifact memos writes (index files, KV snapshots, adapters, exports)
goes through :func:`atomic_path`: written under a temporary name beside its
target, flushed to disk, renamed into place, and the folder flushed so the
rename itself survives a power loss.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
