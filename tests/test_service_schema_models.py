"""The schema fuzzer over the routes that run the language model.

Snapshot builds, trainings, attach and detach and chat run the real code path
on a tiny randomly initialised model of the default's architecture (its
config with small widths, and its tokenizer), so each example costs
milliseconds instead of the real model's seconds. Generated bodies are kept
cheap (a few training steps, a few new tokens), not refused: what is fuzzed
is the service's answer, which must never be a 5xx.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schema_helpers  # noqa: F401  (the NDJSON serializer)
import schemathesis
from helpers import open_memos
from hypothesis import HealthCheck, settings
from lm_helpers import tiny_model_folder
from service_helpers import Tenants, bearer, tenants

from memos.lm import LanguageModel, load_lm
from memos.service.app import create_app

# The most a generated body may ask of the model: the fuzzer tests the doors.
CHEAP = {
    "steps": 2,
    "rank": 4,
    "batch_size": 4,
    "locality_batch": 2,
    "max_new_tokens": 4,
    "max_tokens": 4,
    "max_completion_tokens": 4,
}
MODEL_ROUTES = (
    r"^/v1/(cubes/\{cube\}/(snapshots|adapters|chat)|adapters/\{adapter_id\}/.*|chat/completions)$"
)


def tiny_model(lm: LanguageModel, folder: Path) -> LanguageModel:
    """The default model's architecture and tokenizer with small random weights."""
    return load_lm(str(tiny_model_folder(lm, folder)), folder.parent)


@pytest.fixture(scope="module")
def world(lm: LanguageModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tenants]:
    base = tmp_path_factory.mktemp("models")
    t = tenants(base / "home", lm=tiny_model(lm, base / "tiny"))
    t.mem.add_many(["Alice works at the lighthouse.", "Bob keeps bees."], cube="alice/notes")
    yield t
    t.mem.close()


class _Target:
    """The ASGI app under test, set by :func:`served` (the schema is read at import,
    from an app over a store without a model: the routes are the same)."""

    app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


_TARGET = _Target()
_TARGET.app = create_app(
    open_memos(Path(tempfile.mkdtemp(prefix="memos-models-")) / "h"), mcp=False
)
schema = schemathesis.openapi.from_asgi("/openapi.json", _TARGET).include(path_regex=MODEL_ROUTES)


@schema.hook("map_body")
def _cheap(context: Any, body: Any) -> Any:
    if isinstance(body, dict):
        for name, most in CHEAP.items():
            value = body.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value > most:
                body[name] = most
    return body


@pytest.fixture(autouse=True, scope="module")
def served(world: Tenants) -> None:
    _TARGET.app = create_app(world.mem, mcp=False)


@schema.parametrize()
@settings(
    max_examples=5,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_model_routes_conform_and_never_5xx(case: schemathesis.Case, world: Tenants) -> None:
    response = case.call_and_validate(
        headers=bearer(world.alice),
        excluded_checks=[schemathesis.checks.positive_data_acceptance],
    )
    assert response.status_code < 500, response.text
    print(case.method, case.path, response.status_code, file=sys.stderr)
