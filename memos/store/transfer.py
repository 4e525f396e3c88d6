"""Export and import of memory as JSON lines, lossless (versions included).

The first line is a header ``{"memos_export": 1, ...}``; every other line is
one item with every stored field and its ``versions``. Import validates the
whole file before it stores anything, keeps ids, times and lifecycle figures,
skips ids already present, and re-derives embeddings (from the cache when the
content is known).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from memos import store
from memos.errors import ImportFormatError, PathError
from memos.plaintext import ingest
from memos.records import ImportReport, State
from memos.store import import_rules
from memos.store.files import atomic_path
from memos.store.models import Cube, Item, ItemTag, ItemVersion

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
    with db.read() as session:
        cubes = [store.cube_by_name(session, cube)] if cube else list(session.scalars(select(Cube)))
    if not isinstance(out, str | Path):
        return _write_export(db, out, cubes)
    target = _export_target(Path(out), home, db)
    with atomic_path(target) as tmp, tmp.open("w", encoding="utf-8") as handle:
        return _write_export(db, handle, cubes)


def _write_export(db: Database, handle: IO[str], cubes: list[Cube]) -> int:
    count = 0
    header = {"memos_export": FORMAT, "cubes": [c.name for c in cubes]}
    handle.write(json.dumps(header) + "\n")
    for cube_row in cubes:
        for line in _cube_lines(db, cube_row):
            handle.write(line + "\n")
            count += 1
    return count


def _export_target(path: Path, home: Path, db: Database) -> Path:
    """The real file an export to ``path`` writes (links resolved), if it is safe."""
    target = path.expanduser().resolve()
    if target.is_relative_to(home.expanduser().resolve()):
        raise PathError(
            f"cannot export to {path}: it is inside the memos home {home} "
            "(it could overwrite the store); choose a path outside it"
        )
    if db.sqlite_path is not None:
        base = db.sqlite_path.expanduser().resolve()
        if target in {base, *(base.with_name(base.name + s) for s in _SQLITE_SIDE_FILES)}:
            raise PathError(f"cannot export to {path}: it is a file of the database {base}")
    return target


def _cube_lines(db: Database, cube: Cube) -> Iterator[str]:
    last = 0
    while True:
        with db.read() as session:
            rows = session.scalars(
                select(Item)
                .where(Item.cube_pk == cube.pk, Item.pk > last)
                .order_by(Item.pk)
                .limit(500)
            ).all()
            lines = [json.dumps(_item_dict(session, cube, row), ensure_ascii=False) for row in rows]
        if not rows:
            return
        last = rows[-1].pk
        yield from lines


def _item_dict(session: Session, cube: Cube, item: Item) -> dict[str, Any]:
    data: dict[str, Any] = {"cube": cube.name, **store.item_values(item)}
    data["deleted_at"] = item.deleted_at
    for name in import_rules.TIMES:
        value = getattr(item, name)
        data[name] = value.isoformat() if value else None
    data["versions"] = [
        {
            "version": v.version,
            "text": v.text,
            "content_hash": v.content_hash,
            "metadata": v.meta,
            "tags": v.tags,
            "recorded_at": v.recorded_at.isoformat(),
            "reason": v.reason,
        }
        for v in store.versions_of(session, item)
    ]
    return data


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
        counts = writer.core.db.write(
            partial(_store, writer, cube_name=cube_name, batch=batch, vectors=vectors)
        )
        imported, skipped, versions = (
            a + b for a, b in zip((imported, skipped, versions), counts, strict=True)
        )
    return ImportReport(imported=imported, skipped=skipped, versions=versions, cubes=cubes)


def _read_entries(
    source: str | Path | IO[str], cube: str | None, max_chars: int
) -> Iterator[_Entry]:
    if cube is not None:
        ingest.check_cube_name(cube)
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
            data = import_rules.check_line(json.loads(line), max_chars)
        except json.JSONDecodeError as exc:
            raise _bad(number, f"not JSON ({exc})") from None
        except import_rules.FieldError as exc:
            raise _bad(number, str(exc)) from None
        if data["id"] in seen:
            raise _bad(number, f"field 'id': {data['id']} is also on line {seen[data['id']]}")
        seen[data["id"]] = number
        parsed.append(_Entry(cube or data["cube"], data))
    yield from parsed


def _check_header(line: str) -> None:
    try:
        header = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ImportFormatError(f"line 1 is not JSON: {exc}") from None
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


def _store(
    writer: Writer, session: Session, *, cube_name: str, batch: list[dict[str, Any]], vectors: Any
) -> tuple[int, int, int]:
    now = writer.core.clock.now()
    cube = store.ensure_cube(session, cube_name, now)
    ids = [d["id"] for d in batch]
    present = set(session.scalars(select(Item.id).where(Item.id.in_(ids))))
    live = store.live_by_hash(session, cube.pk, [d["content_hash"] for d in batch])
    revision = store.bump_revision(session, cube.pk)
    imported = skipped = versions = 0
    for data in batch:
        clash = data["state"] != State.DELETED and data["content_hash"] in live
        if data["id"] in present or clash:
            skipped += 1
            continue
        item = _item_from(data, cube.pk, revision)
        session.add(item)
        session.flush()
        for v in data["versions"] or [_first_version(data)]:
            session.add(
                ItemVersion(
                    item_pk=item.pk,
                    version=v["version"],
                    text=v["text"],
                    content_hash=v["content_hash"],
                    meta=v["metadata"],
                    tags=v["tags"],
                    recorded_at=v["recorded_at"],
                    reason=v["reason"],
                )
            )
            versions += 1
        session.add_all(ItemTag(item_pk=item.pk, tag=tag) for tag in data["tags"])
        if item.state != State.DELETED:
            live[item.content_hash] = item
        imported += 1
    store.save_vectors(session, writer.core.embedder.fingerprint, vectors)
    store.log_event(
        session, now, "import", cube_pk=cube.pk, details={"imported": imported, "skipped": skipped}
    )
    return imported, skipped, versions


def _item_from(data: dict[str, Any], cube_pk: int, revision: int) -> Item:
    values = {attr: data[name] for name, attr in store.ITEM_FIELDS.items()}
    return Item(**values, cube_pk=cube_pk, change_seq=revision, deleted_at=data["deleted_at"])


def _first_version(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": data["version"],
        "text": data["text"],
        "content_hash": data["content_hash"],
        "metadata": data["metadata"],
        "tags": data["tags"],
        "recorded_at": data["created_at"],
        "reason": "import",
    }


@contextmanager
def _open(target: str | Path | IO[str]) -> Iterator[IO[str]]:
    if isinstance(target, str | Path):
        try:
            with open(target, encoding="utf-8") as handle:
                yield handle
        except UnicodeDecodeError as exc:
            raise ImportFormatError(f"{target} is not valid UTF-8: {exc}") from None
    else:
        yield target
