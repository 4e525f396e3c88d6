"""The MCP tools through the mcp package's own client: in memory and over HTTP with keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from service_helpers import SECRET, bearer, tenants

from memos.service.app import create_app
from memos.service.mcp_server import build_mcp_server
from memos.service.tenancy import TenantMemos


def test_tools_over_the_in_memory_client(tmp_path: Path) -> None:
    t = tenants(tmp_path / "home")
    server = build_mcp_server(lambda: TenantMemos(t.mem, "bob"))

    async def main() -> None:
        async with Client(server) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert {
                "remember",
                "recall",
                "context",
                "forget",
                "update",
                "list_memories",
                "history",
            } <= names
            stored = await client.call_tool(
                "remember", {"text": "Bob drinks oolong", "tags": ["tea"]}
            )
            assert not stored.is_error
            item_id = stored.structured_content["id"]
            found = await client.call_tool("recall", {"query": "what does Bob drink"})
            assert [h["text"] for h in found.structured_content["hits"]] == ["Bob drinks oolong"]
            other = await client.call_tool("recall", {"query": "spare key flowerpot"})
            assert SECRET not in str(other.structured_content)
            updated = await client.call_tool("update", {"id": item_id, "text": "Bob drinks sencha"})
            assert updated.structured_content["version"] == 2
            versions = await client.call_tool("history", {"id": item_id})
            assert len(versions.structured_content["versions"]) == 2
            gone = await client.call_tool("forget", {"id": item_id})
            assert gone.structured_content["state"] == "deleted"
            alices = await client.call_tool("forget", {"id": t.item_id})
            assert alices.is_error and "UnknownItemError" in alices.content[0].text

    anyio.run(main)
    assert t.mem.get(t.item_id).state == "active"
    t.mem.close()


async def _http_call(app: Any, key: str | None, tool: str, args: dict[str, Any]) -> Any:
    headers = bearer(key) if key else {}
    transport = httpx2.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx2.AsyncClient(transport=transport, base_url="http://t", headers=headers) as http,
        Client(streamable_http_client("http://t/mcp", http_client=http)) as client,
    ):
        return await client.call_tool(tool, args)


def test_mcp_over_http_needs_a_key_and_stays_in_its_tenant(tmp_path: Path) -> None:
    t = tenants(tmp_path / "home")
    app = create_app(t.mem)

    async def main() -> None:
        mine = await _http_call(app, t.alice, "recall", {"query": "spare key", "cube": "notes"})
        assert mine.structured_content["hits"][0]["text"] == SECRET
        theirs = await _http_call(app, t.bob, "recall", {"query": "spare key", "cube": "notes"})
        assert theirs.is_error and SECRET not in str(theirs.content)
        read_only = await _http_call(app, t.alice_read, "remember", {"text": "x", "cube": "notes"})
        assert read_only.is_error
        for key in (None, t.revoked):
            refused = False
            try:
                await _http_call(app, key, "recall", {"query": "spare key", "cube": "notes"})
            except Exception:  # the client surfaces the 401 as an error group
                refused = True
            assert refused

    anyio.run(main)
    t.mem.close()
