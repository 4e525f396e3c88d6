"""A LangGraph store over memos: ``MemosStore`` implements ``BaseStore``.

LangGraph agents (and LangMem's memory tools) keep long-term memory in a
``BaseStore``: JSON values under ``(namespace..., key)``, searched by meaning.
``MemosStore`` keeps them in memos, over the embedded SDK or a remote service
(``Memos.connect``: then under the key's tenant):

- **Where.** Every value lives in one cube (``cube``, default ``"langgraph"``) as
  one memory item. Its namespace and key are metadata (``lg_ns0``, ``lg_ns1``,
  ..., ``lg_depth``, ``lg_key``), so a namespace prefix is a metadata filter;
  the value itself is metadata ``lg_value`` (JSON, at most 64 KiB).
- **What is embedded.** The item's text is what the ``index`` fields pick from
  the value (LangGraph's paths: ``"$"`` the whole value, ``"a.b"``,
  ``"arr[*].x"``...), the store's ``index`` setting by default; memos embeds it
  and searches it in its hybrid way, and ``SearchItem.score`` is memos' score.
  ``index=False`` stores the value unembedded: it is found by namespace and
  filter, never by a query.
- **Filters** apply LangGraph's operators (``$eq``, ``$ne``, ``$gt``, ``$gte``,
  ``$lt``, ``$lte``, nested dicts, whole lists) to the values.
- **TTL** (``supports_ttl``) is a number of minutes counted from the value's
  last use: a read with ``refresh_ttl`` counts as a recall (``mark_used``),
  which is what memos' forgetting curve counts too. An expired value reads as
  missing and is deleted (softly, with its history) when met.

Writes of one ``batch`` are applied after its reads, the last write to a key
winning, as LangGraph's own stores do.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
)
from langgraph.store.base.embed import get_text_at_path, tokenize_path

from memos.api import MemoryAPI
from memos.errors import InvalidInputError, UnknownCubeError
from memos.records import MemoryRecord

PREFIX = "lg_"
#: Most items one query search reads before paging (memos' own limit).
SEARCH_WINDOW = 1000
PAGE = 500


class MemosStore(BaseStore):
    """LangGraph's ``BaseStore`` over a memos SDK (embedded or remote).

    Args:
        memos: a ``Memos``, ``Memos.connect(...)`` or tenant view.
        cube: the cube the store's values live in.
        index: the value fields embedded when a put names none (LangGraph
            paths; default ``["$"]``, the whole value as JSON).
        ttl: LangGraph's TTL settings (``default_ttl`` minutes,
            ``refresh_on_read``).
        now: the clock TTLs are counted on (the embedded store's own clock by
            default, else the wall clock in UTC).
    """

    supports_ttl = True

    def __init__(
        self,
        memos: MemoryAPI,
        *,
        cube: str = "langgraph",
        index: Sequence[str] | None = None,
        ttl: TTLConfig | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.memos = memos
        self.cube = cube
        self.fields = list(index) if index is not None else ["$"]
        self.ttl_config = ttl
        clock = getattr(memos, "clock", None)
        self.now = now or (clock.now if clock is not None else _utcnow)

    # -- the two methods a store implements ------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run ``ops`` in order: reads see the store before the batch's writes."""
        ops = list(ops)
        results: list[Result] = []
        writes: dict[tuple[tuple[str, ...], str], PutOp] = {}
        for op in ops:
            if isinstance(op, PutOp):
                _check_namespace(op.namespace, writing=True)
                writes[(tuple(op.namespace), str(op.key))] = op
                results.append(None)
            elif isinstance(op, GetOp):
                _check_namespace(op.namespace)
                results.append(self._get(op))
            elif isinstance(op, SearchOp):
                _check_namespace(op.namespace_prefix)
                results.append(self._search(op))
            elif isinstance(op, ListNamespacesOp):
                results.append(self._namespaces(op))
            else:
                raise ValueError(f"unknown store operation {type(op).__name__}")
        for op in writes.values():
            self._put(op)
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """:meth:`batch` in a thread (the SDK calls block)."""
        return await asyncio.to_thread(self.batch, list(ops))

    # -- reads ---------------------------------------------------------------------

    def _get(self, op: GetOp) -> Item | None:
        record = self._find(tuple(op.namespace), str(op.key))
        if record is None or self._expired(record):
            return None
        if op.refresh_ttl:
            self._refresh([record])
        return _item(record, Item)

    def _search(self, op: SearchOp) -> list[SearchItem]:
        prefix = tuple(op.namespace_prefix)
        if op.query:
            found = self._query(prefix, op.query, op.limit + op.offset)
        else:
            found = [(record, None) for record in self._records(prefix)]
        live = [
            (record, score)
            for record, score in found
            if not self._expired(record) and _matches(_value(record), op.filter)
        ]
        page = live[op.offset : op.offset + op.limit]
        if op.refresh_ttl:
            self._refresh([record for record, _ in page])
        return [_item(record, SearchItem, score) for record, score in page]

    def _query(
        self, prefix: tuple[str, ...], query: str, wanted: int
    ) -> list[tuple[MemoryRecord, float | None]]:
        flt = {"metadata": {**_prefix_filter(prefix), f"{PREFIX}indexed": True}}
        k = min(SEARCH_WINDOW, max(wanted * 4, 20))
        try:
            hits = self.memos.search(query, cube=self.cube, k=k, filter=flt)
        except UnknownCubeError:
            return []
        scored: list[tuple[MemoryRecord, float | None]] = [(h.item, h.score) for h in hits]
        seen = {record.id for record, _ in scored}
        # values stored with index=False come last, unscored, as LangGraph orders them
        scored += [(r, None) for r in self._records(prefix) if r.id not in seen]
        return scored

    def _records(self, prefix: tuple[str, ...]) -> list[MemoryRecord]:
        """Every value under ``prefix``, oldest first."""
        flt = {"metadata": _prefix_filter(prefix)}
        out: list[MemoryRecord] = []
        offset = 0
        while True:
            try:
                page = self.memos.list(cube=self.cube, filter=flt, limit=PAGE, offset=offset)
            except UnknownCubeError:
                return []
            out += page
            if len(page) < PAGE:
                return sorted(out, key=lambda r: (r.created_at, _namespace(r), _key(r)))
            offset += PAGE

    def _find(self, namespace: tuple[str, ...], key: str) -> MemoryRecord | None:
        flt = {
            "metadata": {
                **_prefix_filter(namespace),
                f"{PREFIX}depth": len(namespace),
                f"{PREFIX}key": key,
            }
        }
        try:
            found = self.memos.list(cube=self.cube, filter=flt, limit=1)
        except UnknownCubeError:
            return None
        return found[0] if found else None

    def _namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        found = {_namespace(r) for r in self._records(()) if not self._expired(r)}
        conditions = op.match_conditions or ()
        kept = [ns for ns in found if all(_condition(ns, c) for c in conditions)]
        if op.max_depth is not None:
            kept = list({ns[: op.max_depth] for ns in kept})
        return sorted(kept)[op.offset : op.offset + op.limit]

    # -- writes --------------------------------------------------------------------

    def _put(self, op: PutOp) -> None:
        namespace, key = tuple(op.namespace), str(op.key)
        existing = self._find(namespace, key)
        if op.value is None:
            if existing is not None:
                self.memos.delete(existing.id, reason="langgraph delete")
            return
        value = dict(op.value)
        texts = _texts(value, self.fields if op.index is None else op.index or [])
        metadata: dict[str, Any] = {
            **{f"{PREFIX}ns{i}": label for i, label in enumerate(namespace)},
            f"{PREFIX}depth": len(namespace),
            f"{PREFIX}key": key,
            f"{PREFIX}value": value,
            f"{PREFIX}indexed": op.index is not False and bool(texts),
        }
        if op.ttl is not None:
            metadata[f"{PREFIX}ttl_minutes"] = float(op.ttl)
        # the text is what search reads; it must be unique in the cube (memos keeps
        # one item per text), so the namespace and key lead it
        text = "\n".join([f"[{'/'.join(namespace)}/{key}]", *texts])
        if existing is None:
            self.memos.add(text, cube=self.cube, metadata=metadata, source="langgraph")
        else:
            self.memos.update(existing.id, text, metadata=metadata, reason="langgraph put")

    # -- time to live ------------------------------------------------------------------

    def _expired(self, record: MemoryRecord) -> bool:
        ttl = record.metadata.get(f"{PREFIX}ttl_minutes")
        if ttl is None:
            return False
        since = max(record.last_accessed_at or record.updated_at, record.updated_at)
        if self.now() < since + timedelta(minutes=float(ttl)):
            return False
        self.memos.delete(record.id, reason="langgraph ttl expired")
        return True

    def _refresh(self, records: Sequence[MemoryRecord]) -> None:
        timed = [r.id for r in records if f"{PREFIX}ttl_minutes" in r.metadata]
        if timed:
            self.memos.mark_used(timed)


# -- values and namespaces -------------------------------------------------------------


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _key(record: MemoryRecord) -> str:
    return str(record.metadata.get(f"{PREFIX}key"))


def _check_namespace(namespace: Sequence[str], writing: bool = False) -> None:
    """LangGraph's own namespace rules (a batch's ops skip the convenience checks)."""
    from langgraph.store.base import InvalidNamespaceError

    if writing and not namespace:
        raise InvalidNamespaceError("namespace cannot be empty")
    if writing and namespace[0] == "langgraph":
        raise InvalidNamespaceError('Root label for namespace cannot be "langgraph"')
    for label in namespace:
        if not isinstance(label, str) or not label or "." in label or "\x00" in label:
            raise InvalidNamespaceError(f"invalid namespace label {label!r}")


def _prefix_filter(prefix: Sequence[str]) -> dict[str, Any]:
    return {f"{PREFIX}ns{i}": label for i, label in enumerate(prefix)}


def _namespace(record: MemoryRecord) -> tuple[str, ...]:
    depth = int(record.metadata.get(f"{PREFIX}depth", 0))
    return tuple(str(record.metadata[f"{PREFIX}ns{i}"]) for i in range(depth))


def _value(record: MemoryRecord) -> dict[str, Any]:
    return dict(record.metadata.get(f"{PREFIX}value") or {})


def _item(record: MemoryRecord, kind: type, score: float | None = None) -> Any:
    fields: dict[str, Any] = {
        "namespace": _namespace(record),
        "key": _key(record),
        "value": _value(record),
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }
    if kind is SearchItem:
        fields["score"] = score
    return kind(**fields)


def _texts(value: Mapping[str, Any], fields: Sequence[str]) -> list[str]:
    """The texts LangGraph's index ``fields`` pick from ``value``."""
    texts: list[str] = []
    for path in fields:
        if path == "$":
            try:
                texts.append(json.dumps(value, sort_keys=True, ensure_ascii=False))
            except (TypeError, ValueError) as exc:
                raise InvalidInputError(f"a store value must be JSON: {exc}") from None
        else:
            texts += [t for t in get_text_at_path(value, tokenize_path(path)) if t]
    return texts


def _condition(namespace: tuple[str, ...], condition: MatchCondition) -> bool:
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    part = namespace[: len(path)] if condition.match_type == "prefix" else namespace[-len(path) :]
    return all(want in ("*", got) for want, got in zip(path, part, strict=True))


def _matches(value: Mapping[str, Any], flt: Mapping[str, Any] | None) -> bool:
    return all(_compare(value.get(key), wanted) for key, wanted in (flt or {}).items())


def _compare(got: Any, wanted: Any) -> bool:
    if isinstance(wanted, Mapping):
        if any(str(k).startswith("$") for k in wanted):
            return all(_operator(got, op, operand) for op, operand in wanted.items())
        return isinstance(got, Mapping) and all(_compare(got.get(k), v) for k, v in wanted.items())
    if isinstance(wanted, list | tuple):
        return (
            isinstance(got, list | tuple)
            and len(got) == len(wanted)
            and all(_compare(g, w) for g, w in zip(got, wanted, strict=True))
        )
    return bool(got == wanted)


Operator = Literal["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"]


def _operator(got: Any, op: str, operand: Any) -> bool:
    if op == "$eq":
        return bool(got == operand)
    if op == "$ne":
        return bool(got != operand)
    if op not in ("$gt", "$gte", "$lt", "$lte"):
        raise ValueError(f"Unsupported operator: {op}")
    try:
        left, right = float(got), float(operand)
    except (TypeError, ValueError):
        return False  # a missing or non-numeric field does not compare (LangGraph raises)
    return {"$gt": left > right, "$gte": left >= right, "$lt": left < right, "$lte": left <= right}[
        op
    ]
