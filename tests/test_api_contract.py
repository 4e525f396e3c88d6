"""One contract for the memory API: every door has the same methods, parameters
and defaults, and every schema comes from the one field list.

mypy checks the three implementations against :class:`memos.api.MemoryAPI`
statically; these tests check the same at run time (annotations as written,
defaults by value), and that the HTTP bodies and MCP tools carry exactly the
fields :mod:`memos.fields` lists.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import anyio
import pytest

from memos import fields
from memos.api import DOOR_ONLY, MemoryAPI
from memos.client import Memos
from memos.parametric.config import TrainConfig
from memos.service import schemas
from memos.service.mcp_server import build_mcp_server
from memos.service.remote import RemoteMemos
from memos.service.tenancy import TenantMemos

DOORS = (Memos, TenantMemos, RemoteMemos)
CONTRACT = sorted(
    name
    for name, member in vars(MemoryAPI).items()
    if inspect.isfunction(member) and not name.startswith("_")
)


def _public_methods(cls: type) -> set[str]:
    return {
        name
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") and (inspect.isfunction(member) or inspect.ismethod(member))
    }


def _written(annotation: Any) -> str:
    # ``builtins.list`` is ``list`` spelt where a method named ``list`` shadows it
    return str(annotation).replace("builtins.", "")


def _shape(function: Any) -> list[tuple[str, str, Any, str]]:
    """(name, kind, default, annotation as written) of every parameter but ``self``."""
    signature = inspect.signature(function)
    return [
        (p.name, p.kind.name, p.default, _written(p.annotation))
        for p in signature.parameters.values()
        if p.name != "self"
    ]


def test_the_contract_covers_the_api() -> None:
    assert {"add", "search", "context", "chat", "build_snapshot", "consolidate"} <= set(CONTRACT)
    assert len(CONTRACT) >= 30


@pytest.mark.parametrize("door", DOORS, ids=lambda c: c.__name__)
def test_each_door_declares_the_contract(door: type) -> None:
    assert MemoryAPI in door.__mro__
    assert not inspect.isabstract(door)


@pytest.mark.parametrize("name", CONTRACT)
def test_every_method_has_the_same_names_parameters_and_defaults(name: str) -> None:
    expected = _shape(getattr(MemoryAPI, name))
    for door in DOORS:
        method = getattr(door, name)
        assert method is not getattr(MemoryAPI, name), f"{door.__name__}.{name} is not implemented"
        assert _shape(method) == expected, f"{door.__name__}.{name}"
        declared = _written(inspect.signature(getattr(MemoryAPI, name)).return_annotation)
        assert _written(inspect.signature(method).return_annotation) == declared, door.__name__


@pytest.mark.parametrize("door", DOORS, ids=lambda c: c.__name__)
def test_no_door_has_public_methods_the_contract_does_not_name(door: type) -> None:
    extra = _public_methods(door) - set(CONTRACT)
    assert extra == set(DOOR_ONLY[door.__name__])


def test_training_options_are_the_train_config_fields() -> None:
    assert tuple(f.name for f in dataclasses.fields(TrainConfig)) == fields.TRAIN_OPTIONS


def test_http_bodies_are_made_from_the_field_lists() -> None:
    assert set(schemas.AddIn.model_fields) == set(fields.ITEM_FIELDS)
    assert set(schemas.ItemFields.model_fields) == set(fields.ITEM_FIELDS[1:])
    assert set(schemas.DocumentIn.model_fields) == set(fields.ITEM_FIELDS)
    assert set(schemas.UpdateIn.model_fields) == {"text", *fields.UPDATE_FIELDS}
    assert set(schemas.TrainIn.model_fields) == {"items", "filter", *fields.TRAIN_OPTIONS}
    # every documented field has its description, for the HTTP and MCP schemas
    assert set(fields.ITEM_FIELDS[1:]) | set(fields.UPDATE_FIELDS) <= set(fields.FIELD_DOCS)


def test_mcp_tools_take_the_same_fields_and_refuse_others() -> None:
    server = build_mcp_server(None)

    async def schemas_of() -> dict[str, dict[str, Any]]:
        return {tool.name: tool.input_schema for tool in await server.list_tools()}

    tools = anyio.run(schemas_of)
    remember = tools["remember"]
    assert set(remember["properties"]) == {"cube", *fields.ITEM_FIELDS}
    assert set(tools["update"]["properties"]) == {"id", "text", *fields.UPDATE_FIELDS}
    assert all(schema.get("additionalProperties") is False for schema in tools.values())
