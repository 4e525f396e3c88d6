"""The remote SDK and the embedded SDK, driven with the same generated inputs.

For each generated call, both must end the same way: the same record (the
fields a caller gave, as stored) or the same typed error class, and never an
error that is not a ``MemosError``. The embedded side is the tenant's view of
an embedded store (the remote's tenant sees the same rules); the remote side
is ``RemoteMemos`` over the real HTTP app. Inputs reach into what agents pass:
model-written text with control characters, lone surrogates and NUL, nested
metadata with values JSON cannot hold, ids and cube names full of ``/ ? # % .``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers import open_memos
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memos.errors import MemosError
from memos.service import keys
from memos.service.app import create_app
from memos.service.remote import RemoteMemos
from memos.service.tenancy import TenantMemos

TENANT = "fuzz"
# Values metadata may hold, JSON-safe or not (sets, datetimes, NaN, huge ints, bytes).
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.binary(max_size=4),
    st.datetimes(timezones=st.just(timezone.utc)),
    st.frozensets(st.integers(), max_size=2),
)
_json_like = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
_texts = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "   ", "ok text", "lone \ud800", "nul\x00char", "a" * 5000]),
    st.binary(max_size=8),
    st.integers(),
)
_names = st.one_of(
    st.text(alphabet=st.characters(blacklist_characters="/"), max_size=12),
    st.sampled_from(["notes", ".", "..", "a?b", "a#b", "a%2Fb", "%", " ", "x" * 300]),
)
_ids = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["..", ".", "../cubes", "a/b", "a?x=1", "#", "%2F", "a\x00b", "\ud800"]),
)
_when = st.one_of(
    st.none(),
    st.datetimes(timezones=st.just(timezone.utc)),
    st.sampled_from(["2024-05-01T10:00:00+00:00", "yesterday", "2024-13-01", 1.5e9]),
)
_item_fields = st.fixed_dictionaries(
    {},
    optional={
        "metadata": st.one_of(
            st.none(), st.dictionaries(st.text(max_size=8), _json_like, max_size=3), _json_like
        ),
        "tags": st.one_of(
            st.none(), st.lists(st.text(max_size=10), max_size=3), st.text(max_size=5)
        ),
        "user_id": st.one_of(st.none(), st.text(max_size=10), st.integers()),
        "speaker": st.one_of(st.none(), st.text(max_size=10)),
        "event_time": _when,
        "pinned": st.one_of(st.booleans(), st.integers(0, 1)),
        "trust": st.one_of(st.floats(), st.integers(-1, 2)),
        "importance": st.floats(-1, 2),
    },
)


def _shape(record: Any) -> dict[str, Any]:
    """What a caller gave, as stored (ids and times differ by design)."""
    return {
        "text": record.text,
        "cube": record.cube,
        "metadata": record.metadata,
        "tags": record.tags,
        "user_id": record.user_id,
        "speaker": record.speaker,
        "event_time": record.event_time,
        "pinned": record.pinned,
        "trust": record.trust,
    }


def _outcome(call: Any) -> Any:
    try:
        result = call()
    except MemosError as exc:
        return type(exc)
    return result


@pytest.fixture(scope="module")
def doors(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TenantMemos, RemoteMemos]]:
    home = tmp_path_factory.mktemp("fuzz")
    local_mem = open_memos(home / "local")
    served_mem = open_memos(home / "served")
    key, _ = keys.create_key(served_mem.db, TENANT, ("read", "write", "admin"), datetime.now())
    with TestClient(create_app(served_mem, mcp=False), raise_server_exceptions=False) as http:
        yield (
            TenantMemos(local_mem, TENANT),
            RemoteMemos("http://testserver", api_key=key, http=http),
        )
    local_mem.close()
    served_mem.close()


_FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


@_FUZZ
@given(text=_texts, cube=_names, fields=_item_fields)
def test_add_ends_the_same_way_through_both_sdks(
    doors: tuple[TenantMemos, RemoteMemos], text: Any, cube: Any, fields: dict[str, Any]
) -> None:
    local, remote = doors
    here = _outcome(lambda: local.add(text, cube=cube, **fields))
    there = _outcome(lambda: remote.add(text, cube=cube, **fields))
    if isinstance(here, type):
        assert there is here, (text, cube, fields)
    else:
        assert not isinstance(there, type), (there, text, cube, fields)
        assert _shape(there) == _shape(here)


@_FUZZ
@given(item_id=_ids, text=_texts, reason=st.one_of(st.text(max_size=10), st.integers()))
def test_calls_by_id_end_the_same_way_through_both_sdks(
    doors: tuple[TenantMemos, RemoteMemos], item_id: Any, text: Any, reason: Any
) -> None:
    local, remote = doors
    calls = {
        "get": lambda m: m.get(item_id),
        "history": lambda m: m.history(item_id),
        "update": lambda m: m.update(item_id, text),
        "delete": lambda m: m.delete(item_id, reason),
        "restore": lambda m: m.restore(item_id),
        "mark_used": lambda m: m.mark_used([item_id]),
        "job": lambda m: m.job(item_id),
        "remove_snapshot": lambda m: m.remove_snapshot(item_id),
        "attach_adapter": lambda m: m.attach_adapter(item_id),
    }
    for name, call in calls.items():
        here = _outcome(lambda call=call: call(local))
        there = _outcome(lambda call=call: call(remote))
        assert isinstance(here, type) and there is here, (name, item_id, here, there)


@_FUZZ
@given(
    query=_texts,
    cube=_names,
    k=st.one_of(st.integers(-2, 1200), st.just(True), st.floats(0, 5)),
    flt=st.one_of(
        st.none(),
        st.fixed_dictionaries(
            {},
            optional={
                "exclude_ids": st.one_of(st.lists(_ids, max_size=2), st.integers()),
                "metadata": st.dictionaries(st.text(max_size=6), _scalars, max_size=2),
                "tags": st.lists(st.text(max_size=6), max_size=2),
                "states": st.lists(st.text(max_size=8), max_size=2),
                "since": _when,
            },
        ),
        st.dictionaries(st.text(max_size=6), st.integers(), max_size=2),
    ),
)
def test_search_ends_the_same_way_through_both_sdks(
    doors: tuple[TenantMemos, RemoteMemos], query: Any, cube: Any, k: Any, flt: Any
) -> None:
    local, remote = doors
    local.add("a stored memory about tea", cube="notes")
    remote.add("a stored memory about tea", cube="notes")
    here = _outcome(lambda: local.search(query, cube=cube, k=k, filter=flt))
    there = _outcome(lambda: remote.search(query, cube=cube, k=k, filter=flt))
    if isinstance(here, type):
        assert there is here, (query, cube, k, flt)
    else:
        assert not isinstance(there, type), (there, query, cube, k, flt)
        assert [h.item.text for h in there] == [h.item.text for h in here]
