"""The MCP server: memory tools for assistants, over stdio or streamable HTTP.

``memos mcp`` runs :func:`build_mcp_server` over stdio for one tenant (the
process's user owns the store). ``memos serve`` routes ``/mcp`` through
:class:`McpEndpoint`, which authenticates the bearer API key exactly as the
REST routes do and hands the tools that caller's tenant view; a request
without a valid key never reaches a tool.
"""

from __future__ import annotations

import contextlib
import inspect
import typing
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase
from pydantic import BaseModel, ConfigDict, Field

from memos import fields as api_fields
from memos.errors import MemosError
from memos.service.schemas import wire_type

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.types import Receive, Scope, Send

    from memos.service.tenancy import TenantMemos

INSTRUCTIONS = (
    "Long-term memory for this user. Call `recall` (or `context`) before answering anything "
    "that may depend on what you were told earlier; call `remember` when the user states a "
    "fact, preference or decision worth keeping. Memories live in named cubes (default "
    "'default'); use one cube per user or project when asked to keep things apart."
)


class Memory(BaseModel):
    id: str
    cube: str
    text: str
    tags: list[str]
    state: str
    version: int
    created_at: str


class Hit(BaseModel):
    id: str
    text: str
    score: float
    tags: list[str]


class Recall(BaseModel):
    hits: list[Hit]


class ContextOut(BaseModel):
    text: str
    tokens: int
    ids: list[str]


class Memories(BaseModel):
    memories: list[Memory]


class Version(BaseModel):
    version: int
    text: str
    recorded_at: str
    reason: str | None


class History(BaseModel):
    versions: list[Version]


def _memory(record: Any) -> Memory:
    return Memory(
        id=record.id,
        cube=record.cube,
        text=record.text,
        tags=list(record.tags),
        state=str(record.state),
        version=record.version,
        created_at=record.created_at.isoformat(),
    )


Cube = Annotated[str, Field(description="Memory cube (a named store, e.g. one per user).")]
ItemId = Annotated[str, Field(description="The id of a memory, as returned by other tools.")]


def build_mcp_server(view: Callable[[], TenantMemos] | None) -> MCPServer:
    """The memos MCP server; ``view`` gives the tenant's memory over stdio (``None``
    over HTTP, where each request's API key picks it)."""
    tools: list[Tool] = []

    def tool(fn: Callable[..., Any]) -> Callable[..., Any]:
        tools.append(strict_tool(fn))
        return fn

    def memos_of(ctx: Context, scope: str) -> TenantMemos:
        request = ctx.request_context.request if ctx.request_context else None
        found = getattr(getattr(request, "state", None), "memos_caller", None)
        if found is not None:
            found.key.require(scope)
            return found.memos
        if view is None:
            raise ToolError("no API key: send 'Authorization: Bearer <key>'")
        return view()

    def guarded(scope: str, ctx: Context, work: Callable[[TenantMemos], Any]) -> Any:
        try:
            return work(memos_of(ctx, scope))
        except MemosError as exc:
            raise ToolError(f"{type(exc).__name__}: {exc}") from None

    @tool
    @with_fields(api_fields.ItemFields)
    def remember(
        text: Annotated[
            str,
            Field(description="The fact, preference or event to keep, in one or two sentences."),
        ],
        ctx: Context,
        cube: Cube = "default",
        **fields: Any,
    ) -> Memory:
        """Store a memory for later. Storing the same text again returns the stored memory
        (no duplicate). Returns the memory with its id."""
        given = {k: v for k, v in fields.items() if v is not None}
        return guarded("write", ctx, lambda m: _memory(m.add(text, cube=cube, **given)))

    @tool
    def recall(
        query: Annotated[str, Field(description="What you want to know, in natural language.")],
        ctx: Context,
        cube: Cube = "default",
        k: Annotated[int, Field(ge=1, le=50, description="How many memories at most.")] = 5,
    ) -> Recall:
        """Search memories by meaning and keywords; best first, each with its id and score."""

        def work(m: TenantMemos) -> Recall:
            hits = m.search(query, cube=cube, k=k)
            return Recall(
                hits=[
                    Hit(id=h.item.id, text=h.item.text, score=h.score, tags=h.item.tags)
                    for h in hits
                ]
            )

        return guarded("read", ctx, work)

    @tool
    def context(
        query: Annotated[str, Field(description="The question or task at hand.")],
        ctx: Context,
        cube: Cube = "default",
        budget_tokens: Annotated[
            int, Field(ge=1, le=100_000, description="Token budget of the block.")
        ] = 512,
    ) -> ContextOut:
        """The memories most relevant to a question, as one text block that fits a token
        budget, ready to read before answering."""

        def work(m: TenantMemos) -> ContextOut:
            block = m.context(query, budget_tokens=budget_tokens, cube=cube)
            return ContextOut(text=block.text, tokens=block.tokens, ids=[i.id for i in block.items])

        return guarded("read", ctx, work)

    @tool
    def forget(
        id: ItemId,
        ctx: Context,
        reason: Annotated[
            str, Field(description="Why it should be forgotten.")
        ] = "asked to forget",
    ) -> Memory:
        """Forget a memory: it no longer appears in recall (it can still be restored by a
        person through the API)."""
        return guarded("write", ctx, lambda m: _memory(m.delete(id, reason)))

    @tool
    @with_fields(api_fields.UpdateFields)
    def update(
        id: ItemId,
        ctx: Context,
        text: Annotated[str | None, Field(description="The corrected text.")] = None,
        **changes: Any,
    ) -> Memory:
        """Correct a memory; the previous version is kept in its history."""
        given = {k: v for k, v in changes.items() if v is not None}
        return guarded("write", ctx, lambda m: _memory(m.update(id, text, **given)))

    @tool
    def list_memories(
        ctx: Context,
        cube: Cube = "default",
        limit: Annotated[int, Field(ge=1, le=200)] = 20,
        offset: Annotated[int, Field(ge=0)] = 0,
    ) -> Memories:
        """List memories of a cube, newest first (page with offset)."""

        def work(m: TenantMemos) -> Memories:
            return Memories(
                memories=[_memory(r) for r in m.list(cube=cube, limit=limit, offset=offset)]
            )

        return guarded("read", ctx, work)

    @tool
    def history(id: ItemId, ctx: Context) -> History:
        """Every version of a memory, oldest first, with why it changed."""

        def work(m: TenantMemos) -> History:
            return History(
                versions=[
                    Version(
                        version=v.version,
                        text=v.text,
                        recorded_at=v.recorded_at.isoformat(),
                        reason=v.reason,
                    )
                    for v in m.history(id)
                ]
            )

        return guarded("read", ctx, work)

    return MCPServer(
        "memos", instructions=INSTRUCTIONS, version="0.1.0", log_level="WARNING", tools=tools
    )


def with_fields(typed: type) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a tool taking ``**fields`` one optional parameter per field of the typed
    dict ``typed`` (:mod:`memos.fields`), typed for JSON and described: the tool's
    parameters come from the same list as the SDK's and the HTTP API's."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(fn, eval_str=True)
        own = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
        added = [
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=None,
                annotation=Annotated[
                    wire_type(kind) | None, Field(description=api_fields.FIELD_DOCS[name])
                ],
            )
            for name, kind in typing.get_type_hints(typed).items()
        ]
        fn.__signature__ = signature.replace(parameters=[*own, *added])  # type: ignore[attr-defined]
        return fn

    return decorate


def strict_tool(fn: Callable[..., Any]) -> Tool:
    """``fn`` as an MCP tool that refuses arguments it does not name (a misspelt
    ``cube`` is an error, not a write into the default cube)."""
    tool = Tool.from_function(fn)
    loose = tool.fn_metadata.arg_model
    strict: type[ArgModelBase] = type(
        loose.__name__,
        (loose,),
        {"model_config": ConfigDict(extra="forbid", arbitrary_types_allowed=True)},
    )
    tool.fn_metadata.arg_model = strict
    tool.parameters = strict.model_json_schema(by_alias=True)
    return tool


@contextlib.asynccontextmanager
async def session_manager(server: MCPServer, max_body_size: int, auth: bool) -> AsyncIterator[None]:
    """Run a fresh streamable-HTTP session manager for one app lifespan.

    Stateless JSON answers, so any worker can take any request. With auth off
    (loopback only), the DNS-rebinding guard stays on.
    """
    from mcp.server.transport_security import TransportSecuritySettings

    security = TransportSecuritySettings(enable_dns_rebinding_protection=False) if auth else None
    server.streamable_http_app(
        streamable_http_path="/mcp",
        max_request_body_size=max_body_size,
        stateless_http=True,
        json_response=True,
        transport_security=security,
    )
    async with server.session_manager.run():
        yield


class McpEndpoint:
    """``/mcp``: authenticate like the REST routes, then hand over to the MCP transport."""

    def __init__(self, server: MCPServer, authenticate: Callable[[Any], Any]) -> None:
        self.server = server
        self.authenticate = authenticate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from starlette.concurrency import run_in_threadpool
        from starlette.requests import Request
        from starlette.responses import JSONResponse

        from memos.service.http_errors import body, status_of
        from memos.service.metrics import TENANT_KEY

        try:
            found = await run_in_threadpool(self.authenticate, Request(scope, receive))
        except MemosError as exc:
            response = JSONResponse(
                body(type(exc).__name__, str(exc)),
                status_of(exc),
                headers={"WWW-Authenticate": "Bearer"},
            )
            await response(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["memos_caller"], state[TENANT_KEY] = found, found.key.tenant
        await self.server.session_manager.handle_request(scope, receive, send)


def mount(app: FastAPI, server: MCPServer, authenticate: Callable[[Any], Any]) -> None:
    """Route ``/mcp`` (exactly: no redirect) to ``server``; it stays out of OpenAPI."""
    from starlette.routing import Route

    app.router.routes.append(
        Route("/mcp", McpEndpoint(server, authenticate), methods=["GET", "POST", "DELETE"])
    )
