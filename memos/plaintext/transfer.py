"""Export and import of memory as JSON lines, lossless (versions included).

The first line is a header ``{"memos_export": 1, ...}``; every other line is
one item with every stored field and its ``versions``. Import validates the
whole file before it stores anything (:mod:`memos.store.import_rules`, by
``add``'s rules), keeps ids, times and lifecycle figures, skips ids already
present, and re-derives embeddings (from the cache when the content is
known). The rows are read and written by :mod:`memos.store.transfer`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from memos.errors import ImportFormatError, InvalidInputError, PathError
from memos.plaintext import ingest
from memos.records import ImportReport, State
from memos.store import import_rules
from memos.store import transfer as rows
from memos.store.files import atomic_path
from memos.validation import check_cube_name, decode_json, parse_json

if TYPE_CHECKING:
    from memos.plaintext.writer import Writer
    from memos.store.db import Database

FORMAT = 1
_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def export_items(db: Database, out: str | Path | IO[str], cube: str | None, home: Path) -> int:
    """Write items of ``cube`` (all cubes when ``None``) to ``out``; return the count.

    A path is written to a temporary file renamed into place, so a failed
    export leaves no partial file and an older file at ``out`` as it was. A
    path inside ``home`` or naming the database's files is refused
    (``PathError``): it could overwrite the store.
    """
    cubes = rows.export_cubes(db, cube)
    if not isinstance(out, str | Path):
        return _write_export(db, out, cubes)
    target = export_target(Path(out), home, db)
    with atomic_path(target) as tmp, tmp.open("w", encoding="utf-8") as handle:
        return _write_export(db, handle, cubes)


def export_lines(db: Database, cube_name: str) -> Iterator[str]:
    """One cube's items as export JSON lines (no header)."""
    return rows.cube_lines(db, cube_name)


def _write_export(db: Database, handle: IO[str], cubes: list[str]) -> int:
    count = 0
    header = {"memos_export": FORMAT, "cubes": cubes}
    handle.write(json.dumps(header, ensure_ascii=False) + "\n")
    for cube_name in cubes:
        for line in rows.cube_lines(db, cube_name):
            handle.write(line + "\n")
            count += 1
    return count


def export_target(path: Path, home: Path, db: Database) -> Path:
    """The real file an export to ``path`` writes (links resolved), if it is safe."""
    try:
        target = path.expanduser().resolve()
    except (RuntimeError, OSError) as exc:  # a symlink loop, an unreadable parent
        raise PathError(f"cannot export to {path}: {exc}") from None
    if target.is_relative_to(home.expanduser().resolve()):
        raise PathError(
            f"cannot export to {path}: it is inside the memos home {home} "
            "(it could overwrite the store); choose a path outside it"
        )
    if db.sqlite_path is not None:
        base = db.sqlite_path.expanduser().resolve()
        if target in {base, *(base.with_name(base.name + s) for s in _SQLITE_SIDE_FILES)}:
            raise PathError(f"cannot export to {path}: it is a file of the database {base}")
    if _is_memos_database(target):
        raise PathError(f"cannot export to {path}: it is a memos database (it would be wiped)")
    return target


def _is_memos_database(target: Path) -> bool:
    """Whether ``target`` is (a side file of) some memos store's SQLite database."""
    base = target
    for suffix in _SQLITE_SIDE_FILES:
        if target.name.endswith(suffix):
            base = target.with_name(target.name[: -len(suffix)])
    if base.name == "memos.db":
        return True
    try:
        with base.open("rb") as handle:
            return handle.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


@dataclass
class _Entry:
    cube: str
    data: dict[str, Any]


def import_items(writer: Writer, source: str | Path | IO[str], cube: str | None) -> ImportReport:
    """Validate every line of ``source`` (by ``add``'s rules, see
    :mod:`memos.store.import_rules`), then store the items not yet present."""
    entries = list(_read_entries(source, cube, writer.core.config.max_text_chars))
    cubes = sorted({e.cube for e in entries})
    imported = skipped = versions = 0
    for cube_name in cubes:
        batch = [e.data for e in entries if e.cube == cube_name]
        live = [d for d in batch if d["state"] != State.DELETED]
        vectors = writer.vectors_for(
            [ingest.new_item(d["text"], max_chars=len(d["text"])) for d in live], cube_name
        )
        store_batch = partial(
            rows.store_batch,
            cube_name=cube_name,
            batch=batch,
            now=writer.core.clock.now(),
            model=writer.core.embedder.fingerprint,
            vectors=vectors,
        )
        counts = writer.core.db.write(store_batch)
        imported, skipped, versions = (
            a + b for a, b in zip((imported, skipped, versions), counts, strict=True)
        )
    return ImportReport(imported=imported, skipped=skipped, versions=versions, cubes=cubes)


def _read_entries(
    source: str | Path | IO[str], cube: str | None, max_chars: int
) -> Iterator[_Entry]:
    if cube is not None:
        check_cube_name(cube)
    with _open(source) as handle:
        lines = list(enumerate(handle, 1))
    if not lines:
        raise ImportFormatError("the file is empty")
    _check_header(lines[0][1])
    parsed: list[_Entry] = []
    seen: dict[str, int] = {}
    for number, line in lines[1:]:
        if not line.strip():
            continue
        try:
            data = import_rules.check_line(
                decode_json(line, "the line", InvalidInputError), max_chars
            )
        except import_rules.FieldError as exc:
            raise _bad(number, str(exc)) from None
        except InvalidInputError as exc:
            raise _bad(number, str(exc)) from None
        if data["id"] in seen:
            raise _bad(number, f"field 'id': {data['id']} is also on line {seen[data['id']]}")
        seen[data["id"]] = number
        parsed.append(_Entry(cube or data["cube"], data))
    yield from parsed


def _check_header(line: str) -> None:
    try:
        header = parse_json(line, "line 1", InvalidInputError)
    except InvalidInputError as exc:
        raise ImportFormatError(f"{exc}") from None
    version = header.get("memos_export") if isinstance(header, dict) else None
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT:
        raise ImportFormatError(
            f"the file is export format {version}, written by a newer memos; "
            f"this one reads format {FORMAT}: upgrade memos to import it"
        )
    if version != FORMAT:
        raise ImportFormatError(
            f'line 1 is not a memos export header ({{"memos_export": {FORMAT}, ...}})'
        )


def _bad(number: int, problem: str) -> ImportFormatError:
    return ImportFormatError(f"line {number}, {problem}; nothing was imported")


@contextmanager
def _open(target: str | Path | IO[str]) -> Iterator[IO[str]]:
    if isinstance(target, str | Path):
        try:
            with open(target, encoding="utf-8") as handle:
                yield handle
        except UnicodeDecodeError as exc:
            raise ImportFormatError(f"{target} is not valid UTF-8: {exc}") from None
        except OSError as exc:
            raise PathError(f"cannot read {target}: {exc.strerror or exc}") from None
    else:
        yield target
