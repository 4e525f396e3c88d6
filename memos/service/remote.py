"""The remote SDK: ``Memos.connect(url, api_key=...)``, the HTTP twin of the embedded ``Memos``.

Same method names and arguments, the same frozen records (rebuilt from the
JSON with pydantic) and the same typed errors (the service's ``error`` field
names the class in :mod:`memos.errors`). One keep-alive ``httpx.Client``;
only idempotent calls (reads, search, context) are retried, on connection
failures and 502/503/504, so a write is never applied twice by a retry.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import httpx
from pydantic import TypeAdapter

from memos import errors
from memos.activation.snapshot import DEFAULT_DTYPE
from memos.lifecycle.decay import StateChange
from memos.model_tiers import DEFAULT_CUBE
from memos.plaintext.filters import SearchFilter
from memos.records import (
    ContextBlock,
    CubeStats,
    ImportReport,
    MemoryRecord,
    MemoryVersion,
    SearchHit,
)

if TYPE_CHECKING:
    from memos.activation.tier import SnapshotInfo
    from memos.chat import Reply
    from memos.parametric.tier import AdapterInfo

T = TypeVar("T")
Filter = SearchFilter | Mapping[str, Any] | None
_RETRY_STATUS = (502, 503, 504)


def _filter(value: Filter) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, SearchFilter):
        from dataclasses import asdict

        data = asdict(value)
        data["metadata"] = dict(value.metadata)
        return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in data.items()}
    return dict(value)


def _jsonable(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in fields.items()}


def error_from(response: httpx.Response) -> errors.MemosError:
    """The typed error a service answer stands for."""
    try:
        data = response.json()
        name, message = str(data["error"]), str(data["message"])
        detail = data.get("detail")
    except (ValueError, KeyError, TypeError):
        return errors.MemosError(f"HTTP {response.status_code}: {response.text[:200]}")
    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, errors.MemosError):
        return cls(message)
    if response.status_code in (400, 413, 422):
        return errors.InvalidInputError(f"{message}: {detail}" if detail else message)
    return errors.MemosError(f"{name}: {message}")


class RemoteMemos:
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
            raise error_from(response)
        return None if response.status_code == 204 else response.json()

    @staticmethod
    def _as(kind: Any, data: Any) -> Any:
        return TypeAdapter(kind).validate_python(data)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> RemoteMemos:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- cubes -------------------------------------------------------------------------

    def cubes(self) -> builtins.list[str]:
        return list(self._call("GET", "/v1/cubes", idempotent=True)["cubes"])

    def create_cube(self, name: str) -> str:
        self._call("POST", "/v1/cubes", json={"name": name})
        return name

    def stats(self, cube: str = DEFAULT_CUBE) -> CubeStats:
        data = self._call("GET", f"/v1/cubes/{cube}/stats", idempotent=True)
        return self._as(CubeStats, data)

    # -- writing -----------------------------------------------------------------------

    def add(self, text: str, *, cube: str = DEFAULT_CUBE, **fields: Any) -> MemoryRecord:
        data = self._call(
            "POST", f"/v1/cubes/{cube}/items", json={"text": text, **_jsonable(fields)}
        )
        return self._as(MemoryRecord, data)

    def add_many(
        self,
        entries: Iterable[str | Mapping[str, Any]],
        *,
        cube: str = DEFAULT_CUBE,
        **defaults: Any,
    ) -> builtins.list[MemoryRecord]:
        items = [
            {**_jsonable(defaults), **({"text": e} if isinstance(e, str) else _jsonable(e))}
            for e in entries
        ]
        data = self._call("POST", f"/v1/cubes/{cube}/items/batch", json={"items": items})
        return self._as(list[MemoryRecord], data)

    def add_messages(
        self,
        messages: Iterable[Mapping[str, Any]],
        *,
        cube: str = DEFAULT_CUBE,
        prefix_speaker: bool = True,
        **defaults: Any,
    ) -> builtins.list[MemoryRecord]:
        body: dict[str, Any] = {
            "messages": [_jsonable(m) for m in messages],
            "prefix_speaker": prefix_speaker,
        }
        if defaults:
            body["defaults"] = _jsonable(defaults)
        data = self._call("POST", f"/v1/cubes/{cube}/messages", json=body)
        return self._as(list[MemoryRecord], data)

    def add_document(
        self, text: str, *, cube: str = DEFAULT_CUBE, **defaults: Any
    ) -> builtins.list[MemoryRecord]:
        body = {"text": text, **_jsonable(defaults)}
        data = self._call("POST", f"/v1/cubes/{cube}/documents", json=body)
        return self._as(list[MemoryRecord], data)

    def update(self, item_id: str, text: str | None = None, **changes: Any) -> MemoryRecord:
        body = _jsonable(changes) if text is None else {"text": text, **_jsonable(changes)}
        data = self._call("PATCH", f"/v1/items/{item_id}", json=body)
        return self._as(MemoryRecord, data)

    def delete(self, item_id: str, reason: str = "user") -> MemoryRecord:
        data = self._call("DELETE", f"/v1/items/{item_id}", params={"reason": reason})
        return self._as(MemoryRecord, data)

    def restore(self, item_id: str) -> MemoryRecord:
        data = self._call("POST", f"/v1/items/{item_id}/restore")
        return self._as(MemoryRecord, data)

    def purge(self, item_id: str, reason: str = "user") -> None:
        self._call("POST", f"/v1/items/{item_id}/purge", params={"reason": reason})

    # -- reading -----------------------------------------------------------------------

    def get(self, item_id: str) -> MemoryRecord:
        data = self._call("GET", f"/v1/items/{item_id}", idempotent=True)
        return self._as(MemoryRecord, data)

    def history(self, item_id: str) -> builtins.list[MemoryVersion]:
        data = self._call("GET", f"/v1/items/{item_id}/history", idempotent=True)
        return self._as(list[MemoryVersion], data)

    def search(
        self,
        query: str,
        *,
        cube: str = DEFAULT_CUBE,
        k: int = 10,
        filter: Filter = None,
        mode: str = "hybrid",
    ) -> builtins.list[SearchHit]:
        body = {"query": query, "k": k, "mode": mode, "filter": _filter(filter)}
        data = self._call("POST", f"/v1/cubes/{cube}/search", json=body, idempotent=True)
        return self._as(list[SearchHit], data)

    def context(
        self,
        query: str,
        *,
        budget_tokens: int = 512,
        cube: str = DEFAULT_CUBE,
        k: int = 20,
        filter: Filter = None,
    ) -> ContextBlock:
        body = {"query": query, "budget_tokens": budget_tokens, "k": k, "filter": _filter(filter)}
        data = self._call("POST", f"/v1/cubes/{cube}/context", json=body, idempotent=True)
        return self._as(ContextBlock, data)

    def mark_used(self, item_ids: Iterable[str]) -> None:
        ids = [item_ids] if isinstance(item_ids, str) else list(item_ids)
        self._call("POST", "/v1/recalls", json={"ids": ids}, idempotent=True)

    def list(
        self, *, cube: str = DEFAULT_CUBE, filter: Filter = None, limit: int = 50, offset: int = 0
    ) -> builtins.list[MemoryRecord]:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        flt = _filter(filter) or {}
        for name in ("user_id", "agent_id", "session_id", "speaker", "role"):
            if flt.get(name) is not None:
                params[name] = flt[name]
        if flt.get("tags"):
            params["tag"] = list(flt["tags"])
        if flt.get("states"):
            params["state"] = list(flt["states"])
        data = self._call("GET", f"/v1/cubes/{cube}/items", params=params, idempotent=True)
        return self._as(list[MemoryRecord], data)

    def decay(self, *, cube: str, dry_run: bool = False) -> builtins.list[StateChange]:
        data = self._call("POST", f"/v1/cubes/{cube}/decay", json={"dry_run": dry_run})
        return self._as(list[StateChange], data)

    # -- export and import -----------------------------------------------------------

    def export_lines(self, cube: str | None = None) -> Iterator[str]:
        """The export as JSON lines, streamed from the service."""
        params = {"cube": cube} if cube is not None else {}
        with self.http.stream("GET", "/v1/export", params=params) as response:
            if response.status_code >= 400:
                response.read()
                raise error_from(response)
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
            with open(out, "w", encoding="utf-8") as handle:
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
        if isinstance(source, str | Path):
            text = Path(source).read_text(encoding="utf-8")
        else:
            text = source.read()
        params = {"cube": cube} if cube is not None else {}
        data = self._call(
            "POST",
            "/v1/import",
            params=params,
            content=text.encode("utf-8"),
            headers={"Content-Type": "application/x-ndjson"},
        )
        return self._as(ImportReport, data)

    # -- the language model ------------------------------------------------------------

    def _follow(self, job_id: str) -> dict[str, Any]:
        """Wait for a job to finish; its result, or its error raised as the typed error."""
        deadline = time.monotonic() + self.job_wait_s
        pause = 0.05
        while True:
            job = self._call("GET", f"/v1/jobs/{job_id}", idempotent=True)
            if job["status"] == "done":
                return dict(job["result"])
            if job["status"] == "failed":
                name, _, message = str(job["error"]).partition(": ")
                cls = getattr(errors, name, None)
                if isinstance(cls, type) and issubclass(cls, errors.MemosError):
                    raise cls(message)
                raise errors.MemosError(f"job {job_id} failed: {job['error']}")
            if time.monotonic() > deadline:
                raise errors.StoreError(f"job {job_id} is still {job['status']} after waiting")
            time.sleep(pause)
            pause = min(pause * 1.5, 1.0)

    def _artifact(self, queued: Any, what: str) -> str:
        result = self._follow(queued["jobs"][0])
        if "artifact" not in result:
            raise errors.InvalidInputError(f"no {what} was made: {result.get('skipped', result)}")
        return str(result["artifact"])

    def build_snapshot(
        self,
        cube: str = DEFAULT_CUBE,
        *,
        query: str | None = None,
        items: Sequence[MemoryRecord] | None = None,
        max_tokens: int = 1024,
        dtype: str = DEFAULT_DTYPE,
    ) -> SnapshotInfo:
        """As ``Memos.build_snapshot``: the service builds it as a job, followed here."""
        from memos.activation.tier import SnapshotInfo

        body: dict[str, Any] = {"query": query, "max_tokens": max_tokens, "dtype": dtype}
        if items is not None:
            body["items"] = [r.id for r in items]
        queued = self._call("POST", f"/v1/cubes/{cube}/snapshots", json=body)
        snapshot_id = self._artifact(queued, "snapshot")
        found = self._call("GET", "/v1/snapshots", params={"cube": cube}, idempotent=True)
        return self._as(SnapshotInfo, next(s for s in found if s["id"] == snapshot_id))

    def consolidate(
        self,
        cube: str = DEFAULT_CUBE,
        *,
        items: Sequence[MemoryRecord] | None = None,
        filter: Filter = None,
        progress: Callable[[int, int], None] | None = None,
        **train_options: Any,
    ) -> AdapterInfo:
        """As ``Memos.consolidate``: the service trains as a job, followed here
        (``progress`` is not called: the steps run on the service)."""
        body: dict[str, Any] = {"filter": _filter(filter), **train_options}
        if body.get("layers") is not None:
            body["layers"] = list(body["layers"])
        if items is not None:
            body["items"] = [r.id for r in items]
        queued = self._call("POST", f"/v1/cubes/{cube}/adapters", json=body)
        adapter_id = self._artifact(queued, "adapter")
        return self.parametric.info(adapter_id)

    def chat(
        self,
        message: str,
        *,
        cube: str = DEFAULT_CUBE,
        history: Sequence[dict[str, str]] = (),
        max_new_tokens: int = 64,
        use_snapshot: bool = True,
    ) -> Reply:
        from memos.chat import Reply

        body = {
            "message": message,
            "history": list(history),
            "max_new_tokens": max_new_tokens,
            "use_snapshot": use_snapshot,
        }
        return self._as(Reply, self._call("POST", f"/v1/cubes/{cube}/chat", json=body))


class RemoteParametric:
    """``mem.parametric`` of a remote store: the tenant's adapters, attach and detach."""

    def __init__(self, remote: RemoteMemos) -> None:
        self.remote = remote

    def adapters(self, cube: str | None = None) -> builtins.list[AdapterInfo]:
        from memos.parametric.tier import AdapterInfo

        params = {"cube": cube} if cube is not None else {}
        data = self.remote._call("GET", "/v1/adapters", params=params, idempotent=True)
        return self.remote._as(list[AdapterInfo], data)

    def info(self, adapter_id: str) -> AdapterInfo:
        for adapter in self.adapters():
            if adapter.id == adapter_id:
                return adapter
        raise errors.UnknownAdapterError(f"no adapter with id {adapter_id!r}")

    def attach(self, adapter_id: str) -> AdapterInfo:
        """Attach an adapter (recorded: every service worker serves with it)."""
        from memos.parametric.tier import AdapterInfo

        data = self.remote._call("POST", f"/v1/adapters/{adapter_id}/attach")
        return self.remote._as(AdapterInfo, data)

    def detach(self, adapter_id: str) -> AdapterInfo:
        from memos.parametric.tier import AdapterInfo

        data = self.remote._call("POST", f"/v1/adapters/{adapter_id}/detach")
        return self.remote._as(AdapterInfo, data)
