"""``memos mcp``: the MCP server over stdio, answering every line.

The mcp package's stdio transport hands a line it cannot parse to the server
as an exception, and a parsed message holding a lone surrogate or nested
past reason passes through to fail later; in both cases the client waits for
an answer that never comes. :func:`serve_stdio` puts a screen between the
transport and the server: each incoming message is checked by the JSON rule of
:mod:`memos.validation`, and a bad line is answered at once with a JSON-RPC
error (``-32700`` for a line that is not JSON-RPC, ``-32600`` for a message
that breaks the rule), naming the request's id when it has a usable one.
"""

from __future__ import annotations

from typing import Any

import anyio
import mcp_types as types
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage

from memos.errors import InvalidInputError
from memos.validation import check_json

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
#: Deepest JSON-RPC message accepted: the envelope and tool arguments around
#: values that are themselves held to ``memos.validation.JSON_MAX_DEPTH``.
MESSAGE_MAX_DEPTH = 48


def screen(message: SessionMessage | Exception) -> SessionMessage | None:
    """The error answer a bad incoming message gets, or ``None`` when it is sound."""
    if isinstance(message, Exception):
        return _error(None, PARSE_ERROR, "Parse error: the line is not a JSON-RPC message")
    data = message.message.model_dump(by_alias=True, exclude_unset=True)
    try:
        check_json(data, "the message", max_depth=MESSAGE_MAX_DEPTH)
    except InvalidInputError as exc:
        request_id = data.get("id")
        usable = isinstance(request_id, int) or (isinstance(request_id, str) and _sound(request_id))
        return _error(request_id if usable else None, INVALID_REQUEST, f"Invalid request: {exc}")
    return None


def _sound(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _error(request_id: Any, code: int, text: str) -> SessionMessage:
    error = types.JSONRPCError(
        jsonrpc="2.0", id=request_id, error=types.ErrorData(code=code, message=text)
    )
    return SessionMessage(error)


async def serve_stdio(server: MCPServer) -> None:
    """Serve ``server`` over this process's stdin and stdout until stdin closes."""
    # The mcp package's own in-memory client reaches the low-level server the same way.
    lowlevel = server._lowlevel_server
    async with stdio_server() as (incoming, outgoing):
        send, receive = anyio.create_memory_object_stream[SessionMessage | Exception](0)

        async def forward() -> None:
            async with send:
                async for message in incoming:
                    answer = screen(message)
                    if answer is None:
                        await send.send(message)
                    else:
                        await outgoing.send(answer)

        async with anyio.create_task_group() as group:
            group.start_soon(forward)
            await lowlevel.run(receive, outgoing, lowlevel.create_initialization_options())


def run_stdio(server: MCPServer) -> None:
    """:func:`serve_stdio` from synchronous code (the CLI)."""
    anyio.run(serve_stdio, server)
