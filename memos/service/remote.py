"""The remote SDK: ``Memos.connect(url, api_key=...)``, the HTTP twin of the embedded ``Memos``.

:class:`RemoteMemos` implements :class:`memos.api.MemoryAPI`: the same method
names, arguments and defaults, the same frozen records (rebuilt from the JSON
with pydantic) and the same typed errors (the service's ``error`` field names
the class in :mod:`memos.errors`). Arguments are checked with the embedded
rules before anything is sent, and every id and cube name is quoted into its
own path segment (:mod:`memos.service.wire`). One keep-alive ``httpx.Client``;
only idempotent calls (reads, search, context) are retried, on connection
failures and 502/503/504, so a write is never applied twice by a retry.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import httpx
from pydantic import TypeAdapter, ValidationError
from typing_extensions import Unpack

from memos import errors
from memos.api import MemoryAPI
from memos.fields import (
    DEFAULT_CUBE,
    DEFAULT_SNAPSHOT_DTYPE,
    SNAPSHOT_DTYPES,
    ItemFields,
    Progress,
    TrainOptions,
    UpdateFields,
)
from memos.filters import FilterArg
from memos.parametric.config import TrainConfig
from memos.plaintext import ingest
from memos.plaintext.context import check_budget
from memos.records import (
    AdapterInfo,
    ContextBlock,
    CubeStats,
    ImportReport,
    JobInfo,
    MemoryRecord,
    MemoryVersion,
    Reply,
    SearchHit,
    SnapshotInfo,
    StateChange,
)
from memos.service import wire
from memos.service.wire import cube_segment, id_segment
from memos.validation import (
    FIELD_LIMITS,
    check_bool,
    check_count,
    check_cube_name,
    check_history,
    check_reason,
    check_search,
    check_string,
    normalize_text,
    parse_time,
)

_RETRY_STATUS = (502, 503, 504)
#: Items sent per request by ``add_many`` (so ``progress`` can be reported).
SEND_BATCH = 1000


class RemoteMemos(MemoryAPI):
    """A memos service reached over HTTP, with the embedded ``Memos`` methods.

    Args:
        url: the service's base URL (``http://127.0.0.1:8420``).
        api_key: the key ``memos keys create`` printed (``None`` for ``--no-auth``).
        timeout: seconds per request.
        retries: extra attempts of an idempotent call.
        job_wait_s: how long a call that runs as a job (``build_snapshot``,
            ``consolidate``) follows it before giving up with ``StoreError``.
        http: an ``httpx.Client`` to use instead of a new one (tests pass an
            in-process client).
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 2,
        http: httpx.Client | None = None,
        job_wait_s: float = 3600.0,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = http or httpx.Client(base_url=url.rstrip("/"), timeout=timeout)
        self.http.headers.update(headers)
        self.retries = retries
        self.job_wait_s = job_wait_s
        self.parametric = RemoteParametric(self)
        self._max_text_chars: int | None = None

    @property
    def max_text_chars(self) -> int:
        """The service's longest item text, asked once (arguments are checked
        against it before they are sent, as the embedded SDK checks them)."""
        if self._max_text_chars is None:
            limits = self._call("GET", "/v1/limits", idempotent=True)
            self._max_text_chars = int(limits["max_text_chars"])
        return self._max_text_chars

    # -- plumbing ------------------------------------------------------------------

    def _call(self, method: str, path: str, *, idempotent: bool = False, **kwargs: Any) -> Any:
        attempts = 1 + (self.retries if idempotent else 0)
        for attempt in range(1, attempts + 1):
            try:
                response = self.http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if attempt == attempts:
                    raise errors.StoreError(f"memos service unreachable: {exc}") from None
            else:
                if response.status_code not in _RETRY_STATUS or attempt == attempts:
                    break
            time.sleep(0.05 * 2**attempt)
        if response.status_code >= 400:
            raise wire.error_from(response)
        if response.status_code == 204:
            return None
        try:
            return response.json()
        except ValueError:
            raise errors.StoreError(f"the service answered {path} with no JSON") from None

    @staticmethod
    def _as(kind: Any, data: Any) -> Any:
        try:
            return TypeAdapter(kind).validate_python(data)
        except ValidationError as exc:
            raise errors.StoreError(f"unexpected answer from the service: {exc}") from None

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> RemoteMemos:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- cubes -------------------------------------------------------------------------

    def cubes(self) -> builtins.list[str]:
        return list(self._call("GET", "/v1/cubes", idempotent=True)["cubes"])

    def create_cube(self, name: str, owner_id: str | None = None) -> str:
        cube_segment(name)
        body: dict[str, Any] = {"name": name}
        if owner_id is not None:
            body["owner_id"] = check_string(owner_id, "owner_id", FIELD_LIMITS["user_id"])
        self._call("POST", "/v1/cubes", json=body)
        return name

    def stats(self, cube: str = DEFAULT_CUBE) -> CubeStats:
        data = self._call("GET", f"/v1/cubes/{cube_segment(cube)}/stats", idempotent=True)
        return self._as(CubeStats, data)

    # -- writing -----------------------------------------------------------------------

    def add(
        self, text: str, *, cube: str = DEFAULT_CUBE, **fields: Unpack[ItemFields]
    ) -> MemoryRecord:
        path = f"/v1/cubes/{cube_segment(cube)}/items"
        item = ingest.from_mapping({"text": text, **fields}, self.max_text_chars, {})
        return self._as(MemoryRecord, self._call("POST", path, json=wire.item_body(item)))

    def add_many(
        self,
        entries: Iterable[str | Mapping[str, Any]],
        *,
        cube: str = DEFAULT_CUBE,
        progress: Progress | None = None,
        **defaults: Unpack[ItemFields],
    ) -> builtins.list[MemoryRecord]:
        path = f"/v1/cubes/{cube_segment(cube)}/items/batch"
        if isinstance(entries, str | bytes | Mapping):
            raise errors.InvalidInputError("entries must be a list of strings or item dicts")
        limit = self.max_text_chars
        items = [wire.item_body(ingest.from_mapping(e, limit, defaults)) for e in entries]
        stored: builtins.list[MemoryRecord] = []
        for start in range(0, len(items), SEND_BATCH):
            batch = items[start : start + SEND_BATCH]
            stored += self._as(list[MemoryRecord], self._call("POST", path, json={"items": batch}))
            if progress is not None:
                progress(len(stored), len(items))
        return stored

    def add_messages(
        self,
        messages: Iterable[Mapping[str, Any]],
        *,
        cube: str = DEFAULT_CUBE,
        prefix_speaker: bool = True,
        progress: Progress | None = None,
        **defaults: Unpack[ItemFields],
    ) -> builtins.list[MemoryRecord]:
        path = f"/v1/cubes/{cube_segment(cube)}/messages"
        if isinstance(messages, str | bytes | Mapping) or not isinstance(messages, Iterable):
            raise errors.InvalidInputError("messages must be a list of {role, content} dicts")
        given = list(messages)
        check_bool(prefix_speaker, "prefix_speaker")
        ingest.from_messages(
            given, max_chars=self.max_text_chars, prefix_speaker=True, defaults=defaults
        )
        body: dict[str, Any] = {
            "messages": [wire.message_body(m) for m in given],
            "prefix_speaker": prefix_speaker,
        }
        if defaults:
            body["defaults"] = wire.defaults_body(defaults)
        stored = self._as(list[MemoryRecord], self._call("POST", path, json=body))
        if progress is not None:
            progress(len(stored), len(stored))
        return stored

    def add_document(
        self, text: str, *, cube: str = DEFAULT_CUBE, **defaults: Unpack[ItemFields]
    ) -> builtins.list[MemoryRecord]:
        body = {
            "text": normalize_text(text, ingest.DOCUMENT_MAX_CHARS),
            **wire.defaults_body(defaults),
        }
        path = f"/v1/cubes/{cube_segment(cube)}/documents"
        return self._as(list[MemoryRecord], self._call("POST", path, json=body))

    def update(
        self, item_id: str, text: str | None = None, **changes: Unpack[UpdateFields]
    ) -> MemoryRecord:
        body = wire.update_body(text, changes, self.max_text_chars)
        path = f"/v1/items/{id_segment(item_id, 'memory item', errors.UnknownItemError)}"
        return self._as(MemoryRecord, self._call("PATCH", path, json=body))

    def delete(self, item_id: str, reason: str = "user") -> MemoryRecord:
        params = {"reason": check_reason(reason)}
        path = f"/v1/items/{id_segment(item_id, 'memory item', errors.UnknownItemError)}"
        return self._as(MemoryRecord, self._call("DELETE", path, params=params))

    def restore(self, item_id: str) -> MemoryRecord:
        segment = id_segment(item_id, "memory item", errors.UnknownItemError)
        return self._as(MemoryRecord, self._call("POST", f"/v1/items/{segment}/restore"))

    def purge(self, item_id: str, reason: str = "user") -> None:
        params = {"reason": check_reason(reason)}
        segment = id_segment(item_id, "memory item", errors.UnknownItemError)
        self._call("POST", f"/v1/items/{segment}/purge", params=params)

    # -- reading -----------------------------------------------------------------------

    def get(self, item_id: str) -> MemoryRecord:
        segment = id_segment(item_id, "memory item", errors.UnknownItemError)
        return self._as(MemoryRecord, self._call("GET", f"/v1/items/{segment}", idempotent=True))

    def history(self, item_id: str) -> builtins.list[MemoryVersion]:
        segment = id_segment(item_id, "memory item", errors.UnknownItemError)
        data = self._call("GET", f"/v1/items/{segment}/history", idempotent=True)
        return self._as(list[MemoryVersion], data)

    def search(
        self,
        query: str,
        *,
        cube: str = DEFAULT_CUBE,
        k: int = 10,
        filter: FilterArg = None,
        mode: str = "hybrid",
    ) -> builtins.list[SearchHit]:
        path = f"/v1/cubes/{cube_segment(cube)}/search"
        text = normalize_text(query, self.max_text_chars)
        flt = wire.filter_body(filter)
        check_search(k, mode)
        body = {"query": text, "k": k, "mode": mode, "filter": flt}
        return self._as(list[SearchHit], self._call("POST", path, json=body, idempotent=True))

    def context(
        self,
        query: str,
        *,
        budget_tokens: int = 512,
        cube: str = DEFAULT_CUBE,
        k: int = 20,
        filter: FilterArg = None,
    ) -> ContextBlock:
        path = f"/v1/cubes/{cube_segment(cube)}/context"
        check_budget(budget_tokens)
        text, flt = normalize_text(query, self.max_text_chars), wire.filter_body(filter)
        check_search(k, "hybrid")
        body = {"query": text, "budget_tokens": budget_tokens, "k": k, "filter": flt}
        return self._as(ContextBlock, self._call("POST", path, json=body, idempotent=True))

    def mark_used(self, item_ids: Iterable[str]) -> None:
        ids = wire.ids_body(item_ids)
        if ids:
            self._call("POST", "/v1/recalls", json={"ids": ids}, idempotent=True)

    def list(
        self,
        *,
        cube: str = DEFAULT_CUBE,
        filter: FilterArg = None,
        limit: int = 50,
        offset: int = 0,
    ) -> builtins.list[MemoryRecord]:
        path = f"/v1/cubes/{cube_segment(cube)}/items/query"
        check_count(limit, "limit", 1)
        check_count(offset, "offset", 0)
        body = {"filter": wire.filter_body(filter), "limit": limit, "offset": offset}
        return self._as(list[MemoryRecord], self._call("POST", path, json=body, idempotent=True))

    # -- lifecycle, export and import ---------------------------------------------------

    def decay(
        self, *, cube: str | None = None, now: datetime | None = None, dry_run: bool = False
    ) -> builtins.list[StateChange]:
        at = parse_time(now, "now")
        check_bool(dry_run, "dry_run")
        body: dict[str, Any] = {"dry_run": dry_run}
        if at is not None:
            body["now"] = at.isoformat()
        changes: builtins.list[StateChange] = []
        for name in [cube] if cube is not None else self.cubes():
            data = self._call("POST", f"/v1/cubes/{cube_segment(name)}/decay", json=body)
            changes += self._as(list[StateChange], data)
        return changes

    def export_lines(self, cube: str | None = None) -> Iterator[str]:
        """The export as JSON lines, streamed from the service."""
        params = _cube_param(cube)
        with self.http.stream("GET", "/v1/export", params=params) as response:
            if response.status_code >= 400:
                response.read()
                raise wire.error_from(response)
            # split on b"\n" only: httpx's iter_lines() also splits on U+2028
            # and form feeds, which JSON leaves unescaped inside strings
            pending = b""
            for chunk in response.iter_bytes():
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    if line:
                        yield line.decode("utf-8") + "\n"
            if pending:
                yield pending.decode("utf-8") + "\n"

    def export_jsonl(self, out: str | Path | IO[str], *, cube: str | None = None) -> int:
        """Write the export to ``out`` (a path or a text stream); returns the item count."""
        if isinstance(out, str | Path):
            try:
                handle = open(out, "w", encoding="utf-8")  # noqa: SIM115
            except OSError as exc:
                raise errors.PathError(f"cannot write {out}: {exc.strerror or exc}") from None
            with handle:
                return self.export_jsonl(handle, cube=cube)
        count = -1
        for line in self.export_lines(cube):
            out.write(line)
            count += 1
        return max(count, 0)

    def import_jsonl(
        self, source: str | Path | IO[str], *, cube: str | None = None
    ) -> ImportReport:
        """Send an export to the service (needs an admin key)."""
        try:
            text = (
                Path(source).read_text(encoding="utf-8")
                if isinstance(source, str | Path)
                else source.read()
            )
        except UnicodeDecodeError as exc:
            raise errors.ImportFormatError(f"{source} is not valid UTF-8: {exc}") from None
        except OSError as exc:
            raise errors.PathError(f"cannot read {source}: {exc.strerror or exc}") from None
        if not isinstance(text, str):
            raise errors.ImportFormatError("an import source must give text, not bytes")
        try:
            payload = text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise errors.ImportFormatError(f"the export is not valid Unicode: {exc}") from None
        params = _cube_param(cube)
        data = self._call(
            "POST",
            "/v1/import",
            params=params,
            content=payload,
            headers={"Content-Type": "application/x-ndjson"},
        )
        return self._as(ImportReport, data)

    # -- the model tiers -----------------------------------------------------------------

    def _follow(self, job_id: str) -> dict[str, Any]:
        """Wait for a job to finish; its result, or its error raised as the typed error."""
        deadline = time.monotonic() + self.job_wait_s
        pause = 0.05
        while True:
            job = self._call("GET", f"/v1/jobs/{job_id}", idempotent=True)
            if job["status"] == "done":
                return dict(job["result"])
            if job["status"] == "failed":
                raise wire.job_failure(job)
            if time.monotonic() > deadline:
                raise errors.StoreError(f"job {job_id} is still {job['status']} after waiting")
            time.sleep(pause)
            pause = min(pause * 1.5, 1.0)

    def _artifact(self, queued: Any, what: str) -> str:
        result = self._follow(queued["jobs"][0])
        if "artifact" not in result:
            raise errors.InvalidInputError(f"no {what} was made: {result.get('skipped', result)}")
        return str(result["artifact"])

    def chat(
        self,
        message: str,
        *,
        cube: str = DEFAULT_CUBE,
        history: Sequence[Mapping[str, str]] = (),
        max_new_tokens: int = 64,
        use_snapshot: bool = True,
    ) -> Reply:
        body = {
            "message": normalize_text(message),
            "history": check_history(history),
            "max_new_tokens": check_count(max_new_tokens, "max_new_tokens", 1, 4096),
            "use_snapshot": check_bool(use_snapshot, "use_snapshot"),
        }
        path = f"/v1/cubes/{cube_segment(cube)}/chat"
        return self._as(Reply, self._call("POST", path, json=body))

    def build_snapshot(
        self,
        cube: str = DEFAULT_CUBE,
        *,
        query: str | None = None,
        items: Sequence[MemoryRecord] | None = None,
        max_tokens: int = 1024,
        dtype: str = DEFAULT_SNAPSHOT_DTYPE,
    ) -> SnapshotInfo:
        """As ``Memos.build_snapshot``: the service builds it as a job, followed here."""
        if dtype not in SNAPSHOT_DTYPES:
            raise errors.InvalidInputError(
                f"dtype={dtype!r}; allowed: {', '.join(SNAPSHOT_DTYPES)}"
            )
        body: dict[str, Any] = {
            "query": None if query is None else normalize_text(query),
            "max_tokens": check_count(max_tokens, "max_tokens", 16),
            "dtype": dtype,
        }
        if items is not None:
            body["items"] = wire.ids_body(r.id for r in items)
        path = f"/v1/cubes/{cube_segment(cube)}/snapshots"
        snapshot_id = self._artifact(self._call("POST", path, json=body), "snapshot")
        return next(s for s in self.snapshots(cube) if s.id == snapshot_id)

    def consolidate(
        self,
        cube: str = DEFAULT_CUBE,
        *,
        items: Sequence[MemoryRecord] | None = None,
        filter: FilterArg = None,
        progress: Progress | None = None,
        **options: Unpack[TrainOptions],
    ) -> AdapterInfo:
        """As ``Memos.consolidate``: the service trains as a job, followed here
        (``progress`` is called once, when it is done)."""
        TrainConfig.from_options(options)
        body: dict[str, Any] = {"filter": wire.filter_body(filter), **options}
        if body.get("layers") is not None:
            body["layers"] = list(body["layers"])
        if items is not None:
            body["items"] = wire.ids_body(r.id for r in items)
        path = f"/v1/cubes/{cube_segment(cube)}/adapters"
        adapter_id = self._artifact(self._call("POST", path, json=body), "adapter")
        if progress is not None:
            progress(1, 1)
        return next(a for a in self.adapters(cube) if a.id == adapter_id)

    def snapshots(self, cube: str | None = None) -> builtins.list[SnapshotInfo]:
        params = _cube_param(cube)
        data = self._call("GET", "/v1/snapshots", params=params, idempotent=True)
        return self._as(list[SnapshotInfo], data)

    def remove_snapshot(self, snapshot_id: str) -> None:
        segment = id_segment(snapshot_id, "snapshot", errors.UnknownSnapshotError)
        self._call("DELETE", f"/v1/snapshots/{segment}")

    def adapters(self, cube: str | None = None) -> builtins.list[AdapterInfo]:
        params = _cube_param(cube)
        data = self._call("GET", "/v1/adapters", params=params, idempotent=True)
        return self._as(list[AdapterInfo], data)

    def attach_adapter(self, adapter_id: str) -> AdapterInfo:
        segment = id_segment(adapter_id, "adapter", errors.UnknownAdapterError)
        return self._as(AdapterInfo, self._call("POST", f"/v1/adapters/{segment}/attach"))

    def detach_adapter(self, adapter_id: str) -> AdapterInfo:
        segment = id_segment(adapter_id, "adapter", errors.UnknownAdapterError)
        return self._as(AdapterInfo, self._call("POST", f"/v1/adapters/{segment}/detach"))

    def remove_adapter(self, adapter_id: str) -> None:
        segment = id_segment(adapter_id, "adapter", errors.UnknownAdapterError)
        self._call("DELETE", f"/v1/adapters/{segment}")

    def jobs(
        self, statuses: Sequence[str] | None = None, limit: int = 200
    ) -> builtins.list[JobInfo]:
        check_count(limit, "limit", 1, 1000)
        params: dict[str, Any] = {"limit": limit}
        if statuses is not None:
            params["status"] = [check_string(s, "status") for s in statuses]
        return self._as(
            list[JobInfo], self._call("GET", "/v1/jobs", params=params, idempotent=True)
        )

    def job(self, job_id: str) -> JobInfo:
        segment = id_segment(job_id, "job", errors.UnknownJobError)
        return self._as(JobInfo, self._call("GET", f"/v1/jobs/{segment}", idempotent=True))


def _cube_param(cube: str | None) -> dict[str, str]:
    """A cube as a query parameter (checked; httpx encodes it)."""
    return {} if cube is None else {"cube": check_cube_name(cube, stored=False)}


class RemoteParametric:
    """``mem.parametric`` of a remote store: the tenant's adapters, attach and detach."""

    def __init__(self, remote: RemoteMemos) -> None:
        self.remote = remote

    def adapters(self, cube: str | None = None) -> builtins.list[AdapterInfo]:
        return self.remote.adapters(cube)

    def info(self, adapter_id: str) -> AdapterInfo:
        for adapter in self.adapters():
            if adapter.id == adapter_id:
                return adapter
        raise errors.UnknownAdapterError(f"no adapter with id {adapter_id!r}")

    def attach(self, adapter_id: str) -> AdapterInfo:
        """Attach an adapter (recorded: every service worker serves with it)."""
        return self.remote.attach_adapter(adapter_id)

    def detach(self, adapter_id: str) -> AdapterInfo:
        return self.remote.detach_adapter(adapter_id)
