"""Property-based fuzzing of the OpenAPI schema in-process: no 5xx, every answer conforms."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import schema_helpers  # noqa: F401  (the NDJSON serializer)
import schemathesis
from hypothesis import HealthCheck, settings
from service_helpers import bearer, tenants

from memos.service.app import create_app

_WORLD = tenants(Path(tempfile.mkdtemp(prefix="memos-schema-")) / "home")
_APP = create_app(_WORLD.mem, mcp=False)
# The routes that run the language model are fuzzed apart, on a tiny random
# model of the default's architecture (tests/test_service_schema_models.py);
# tests/test_service_lm.py exercises them with the real model.
schema = (
    schemathesis.openapi.from_asgi("/openapi.json", _APP)
    .exclude(path_regex=r"^/v1/cubes/\{cube\}/(snapshots|adapters|chat)$", method="POST")
    .exclude(path_regex=r"^/v1/adapters/\{adapter_id\}/attach$")
    .exclude(path_regex=r"^/v1/chat/completions$")
)


@schema.parametrize()
@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_and_never_5xx(case: schemathesis.Case) -> None:
    # The library also refuses text the schema cannot describe (empty after
    # normalising, NUL characters) with a typed 400, so schema-valid-but-refused
    # is expected; everything else is checked.
    response = case.call_and_validate(
        headers=bearer(_WORLD.alice),
        excluded_checks=[schemathesis.checks.positive_data_acceptance],
    )
    assert response.status_code < 500, response.text
    print(case.method, case.path, response.status_code, file=sys.stderr)
