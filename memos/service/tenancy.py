"""A tenant's view of one store: the only way the service doors reach memory.

:class:`TenantMemos` wraps an embedded :class:`memos.client.Memos` (one core
shared by every tenant) and confines each call to one tenant:

1. cube names from the caller are checked in the plain form (no ``/``) and
   mapped to the tenant's stored names (:func:`memos.store.cubes.stored_name`);
2. an item, job or artifact named by id is first checked to lie in one of the
   tenant's cubes; another tenant's object raises the same ``NotFoundError``
   as a missing one, so existence is not leaked;
3. everything handed back names cubes as the tenant sees them.

The tenant comes from the caller's API key (:mod:`memos.service.keys`), never
from a request field.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import io
import json
import queue
import threading
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import IO, Any, cast

from sqlalchemy import select

from memos import store
from memos.client import Memos
from memos.errors import (
    ImportFormatError,
    InvalidInputError,
    UnknownItemError,
)
from memos.lifecycle.decay import StateChange
from memos.model_tiers import DEFAULT_CUBE
from memos.plaintext import ingest
from memos.plaintext.filters import SearchFilter
from memos.records import (
    ContextBlock,
    CubeStats,
    ImportReport,
    MemoryRecord,
    MemoryVersion,
    SearchHit,
)
from memos.service.tenant_tiers import TenantTiers
from memos.service.tenant_tiers import public as _public
from memos.store.cubes import split_name, stored_name
from memos.store.models import Artifact, Cube, Item

Filter = SearchFilter | Mapping[str, Any] | None


class _LineSink(io.TextIOBase):
    """A text stream whose writes go to a bounded queue, for a reader in another thread."""

    def __init__(self, lines: queue.Queue[object], cancelled: threading.Event) -> None:
        self.lines = lines
        self.cancelled = cancelled

    def write(self, text: str) -> int:
        self.put(text)
        return len(text)

    def put(self, item: object) -> None:
        while not self.cancelled.is_set():
            try:
                self.lines.put(item, timeout=0.5)
                return
            except queue.Full:
                continue
        raise InterruptedError("export cancelled: the reader went away")


def _streamed_export(mem: Memos, cube: str) -> Iterator[str]:
    """``mem.export_jsonl(cube=cube)`` line by line, written by a helper thread into
    a bounded queue (the reader closing the iterator stops the writer)."""
    lines: queue.Queue[object] = queue.Queue(maxsize=256)
    cancelled = threading.Event()
    done = object()

    sink = _LineSink(lines, cancelled)

    def produce() -> None:
        try:
            mem.export_jsonl(cast(IO[str], sink), cube=cube)
            sink.put(done)
        except InterruptedError:
            pass
        except Exception as exc:  # handed to the reader, raised there
            with contextlib.suppress(InterruptedError):
                sink.put(exc)

    writer = threading.Thread(target=produce, name="memos-export", daemon=True)
    writer.start()
    try:
        while True:
            item = lines.get()
            if item is done:
                return
            if isinstance(item, Exception):
                raise item
            # only "\n" ends a line: str.splitlines() would also split inside a
            # text holding U+2028 or a form feed (found by the schema fuzzer)
            yield from str(item).rstrip("\n").split("\n")
    finally:
        cancelled.set()
        writer.join(timeout=5)


class TenantMemos(TenantTiers):
    """One tenant's memory in a shared store (the embedded SDK's methods, confined).

    Args:
        mem: the store's embedded façade (shared by every tenant's view).
        tenant: the tenant every call is confined to.
    """

    def __init__(self, mem: Memos, tenant: str) -> None:
        if not ingest.TENANT_NAME.match(tenant):
            raise InvalidInputError(
                f"tenant {tenant!r} is invalid: use 1-64 lowercase letters, digits, '_' or '-', "
                "starting with a letter or digit"
            )
        self.mem = mem
        self.tenant = tenant

    # -- names and ownership ---------------------------------------------------

    def stored(self, cube: str) -> str:
        """The stored name of this tenant's cube ``cube`` (checked)."""
        ingest.check_cube_name(cube, stored=False)
        name = stored_name(self.tenant, cube)
        if len(name) > 200:
            raise InvalidInputError(f"cube name {cube!r} is too long for tenant {self.tenant!r}")
        return name

    def _own_item(self, item_id: str) -> None:
        if not isinstance(item_id, str):
            raise UnknownItemError(f"no memory item with id {item_id!r}")
        with self.mem.db.read() as session:
            tenant = session.scalar(
                select(Cube.tenant).join(Item, Item.cube_pk == Cube.pk).where(Item.id == item_id)
            )
        if tenant != self.tenant:
            raise UnknownItemError(f"no memory item with id {item_id!r}")

    def _own_artifact(self, artifact_id: str) -> bool:
        with self.mem.db.read() as session:
            tenant = session.scalar(
                select(Cube.tenant)
                .join(Artifact, Artifact.cube_pk == Cube.pk)
                .where(Artifact.id == artifact_id)
            )
        return tenant == self.tenant

    # -- cubes -------------------------------------------------------------------

    def cubes(self) -> list[str]:
        """Names of the tenant's cubes."""
        with self.mem.db.read() as session:
            return store.cube_names(session, self.tenant)

    def create_cube(self, name: str) -> str:
        self.mem.create_cube(self.stored(name))
        return name

    def stats(self, cube: str = DEFAULT_CUBE) -> CubeStats:
        return _public(self.mem.stats(self.stored(cube)))

    # -- writing -------------------------------------------------------------------

    def add(self, text: str, *, cube: str = DEFAULT_CUBE, **fields: Any) -> MemoryRecord:
        return _public(self.mem.add(text, cube=self.stored(cube), **fields))

    def add_many(
        self,
        entries: Iterable[str | Mapping[str, Any]],
        *,
        cube: str = DEFAULT_CUBE,
        **defaults: Any,
    ) -> list[MemoryRecord]:
        return [_public(r) for r in self.mem.add_many(entries, cube=self.stored(cube), **defaults)]

    def add_messages(
        self,
        messages: Iterable[Mapping[str, Any]],
        *,
        cube: str = DEFAULT_CUBE,
        prefix_speaker: bool = True,
        **defaults: Any,
    ) -> list[MemoryRecord]:
        records = self.mem.add_messages(
            messages, cube=self.stored(cube), prefix_speaker=prefix_speaker, **defaults
        )
        return [_public(r) for r in records]

    def add_document(
        self, text: str, *, cube: str = DEFAULT_CUBE, **defaults: Any
    ) -> list[MemoryRecord]:
        return [_public(r) for r in self.mem.add_document(text, cube=self.stored(cube), **defaults)]

    def update(self, item_id: str, text: str | None = None, **changes: Any) -> MemoryRecord:
        self._own_item(item_id)
        return _public(self.mem.update(item_id, text, **changes))

    def delete(self, item_id: str, reason: str = "user") -> MemoryRecord:
        self._own_item(item_id)
        return _public(self.mem.delete(item_id, reason))

    def restore(self, item_id: str) -> MemoryRecord:
        self._own_item(item_id)
        return _public(self.mem.restore(item_id))

    def purge(self, item_id: str, reason: str = "user") -> None:
        self._own_item(item_id)
        self.mem.purge(item_id, reason)

    # -- reading -------------------------------------------------------------------

    def get(self, item_id: str) -> MemoryRecord:
        self._own_item(item_id)
        return _public(self.mem.get(item_id))

    def history(self, item_id: str) -> list[MemoryVersion]:
        self._own_item(item_id)
        return self.mem.history(item_id)

    def search(
        self,
        query: str,
        *,
        cube: str = DEFAULT_CUBE,
        k: int = 10,
        filter: Filter = None,
        mode: str = "hybrid",
    ) -> list[SearchHit]:
        hits = self.mem.search(query, cube=self.stored(cube), k=k, filter=filter, mode=mode)
        return [dataclasses.replace(h, item=_public(h.item)) for h in hits]

    def context(
        self,
        query: str,
        *,
        budget_tokens: int = 512,
        cube: str = DEFAULT_CUBE,
        k: int = 20,
        filter: Filter = None,
    ) -> ContextBlock:
        block = self.mem.context(
            query, budget_tokens=budget_tokens, cube=self.stored(cube), k=k, filter=filter
        )
        return dataclasses.replace(block, items=[_public(r) for r in block.items])

    def mark_used(self, item_ids: Iterable[str]) -> None:
        ids = [item_ids] if isinstance(item_ids, str) else list(item_ids)
        for item_id in ids:
            self._own_item(item_id)
        self.mem.mark_used(ids)

    def list(
        self, *, cube: str = DEFAULT_CUBE, filter: Filter = None, limit: int = 50, offset: int = 0
    ) -> list[MemoryRecord]:
        records = self.mem.list(cube=self.stored(cube), filter=filter, limit=limit, offset=offset)
        return [_public(r) for r in records]

    # -- lifecycle -----------------------------------------------------------------

    def decay(
        self, *, cube: str | None = None, now: datetime | None = None, dry_run: bool = False
    ) -> builtins.list[StateChange]:
        """Decay one cube, or each of the tenant's cubes when ``cube`` is None."""
        cubes = [cube] if cube is not None else self.cubes()
        changes: list[StateChange] = []
        for name in cubes:
            changes += self.mem.decay(cube=self.stored(name), now=now, dry_run=dry_run)
        return [_public(c) for c in changes]

    # -- export and import -----------------------------------------------------------

    def export_lines(self, cube: str | None = None) -> Iterator[str]:
        """The tenant's items (one cube, or all) as export JSON lines, header first
        (streamed: memory stays bounded whatever the cube's size)."""
        names = [cube] if cube is not None else self.cubes()
        stored = [self.stored(name) for name in names]
        for name in stored:
            self.mem.core.cube(name)  # an unknown cube is an error before anything is sent
        yield json.dumps({"memos_export": 1, "cubes": names}) + "\n"
        for name in stored:
            lines = _streamed_export(self.mem, name)
            next(lines)  # the cube's own header
            for line in lines:
                data = json.loads(line)
                data["cube"] = split_name(data["cube"])[1]
                yield json.dumps(data, ensure_ascii=False) + "\n"

    def export_jsonl(self, out: IO[str], *, cube: str | None = None) -> int:
        count = -1
        for line in self.export_lines(cube):
            out.write(line)
            count += 1
        return count

    def import_jsonl(self, source: IO[str], *, cube: str | None = None) -> ImportReport:
        """Import an export into the tenant's cubes (the names in the file are the
        tenant's; ``cube`` puts everything into one)."""
        lines = []
        for number, line in enumerate(source, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                raise ImportFormatError(f"line {number}: not JSON") from None
            if isinstance(data, dict) and isinstance(data.get("cube"), str):
                data["cube"] = self.stored(cube if cube is not None else data["cube"])
            lines.append(json.dumps(data, ensure_ascii=False))
        report = self.mem.import_jsonl(
            io.StringIO("\n".join(lines) + "\n"),
            cube=self.stored(cube) if cube is not None else None,
        )
        return dataclasses.replace(report, cubes=[split_name(c)[1] for c in report.cubes])
