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
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx
from pydantic import TypeAdapter

from memos import errors
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
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = http or httpx.Client(base_url=url.rstrip("/"), timeout=timeout)
        self.http.headers.update(headers)
        self.retries = retries

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
