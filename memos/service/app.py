"""The HTTP app: the ``/v1`` routes (:mod:`memos.service.routes`), the
OpenAI-compatible chat (:mod:`memos.service.openai_compat`), the ``/ui`` pages
(:mod:`memos.service.ui`), health and metrics.

:func:`create_app` builds it over one store shared by every tenant;
``memos serve`` workers build it with :func:`app_from_env`. The MCP endpoint
is routed at ``/mcp`` beside it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import PlainTextResponse

from memos.client import Memos
from memos.config import MemosConfig
from memos.service import http_errors, openai_compat, ui
from memos.service.callers import Caller, ServiceState, caller, job_executor, scoped, state_of
from memos.service.guards import RequestGuard
from memos.service.metrics import Metrics, MetricsMiddleware
from memos.service.openai_compat import Upstream
from memos.service.routes import v1
from memos.service.schemas import ErrorOut, Health
from memos.store import schema
from memos.store.cubes import split_name
from memos.store.lifecycle import state_counts

DEFAULT_MAX_BODY = 16 * 1024 * 1024


# -- health and metrics ------------------------------------------------------------

ops = APIRouter(responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}})


@ops.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@ops.get("/readyz", response_model=Health, responses={503: {"model": Health}})
def readyz(request: Request) -> Any:
    """The database answers and its schema is at head."""
    from fastapi.responses import JSONResponse

    try:
        current = schema.status(state_of(request).core.db).current
    except Exception:  # a down database is the answer, not an error
        return JSONResponse(Health(status="database unreachable").model_dump(), 503)
    if current != schema.HEAD:
        return JSONResponse(
            Health(status="schema not at head", schema_revision=current).model_dump(), 503
        )
    return Health(status="ok", schema_revision=current)


@ops.get("/metrics", response_class=PlainTextResponse)
def metrics(request: Request, who: Annotated[Caller, Depends(scoped("admin"))]) -> str:
    """Prometheus text: requests and latency by route; the caller's items by cube and state."""
    state = state_of(request)
    with state.core.db.read() as session:
        rows = state_counts(session, who.key.tenant)
    items = [(split_name(name)[1], item_state, n) for name, item_state, n in rows]
    return state.metrics.render(who.key.tenant, items)


# -- the app -----------------------------------------------------------------------


def create_app(
    mem: Memos,
    *,
    auth: bool = True,
    max_body_size: int = DEFAULT_MAX_BODY,
    mcp: bool = True,
    own_memos: bool = False,
    threads: int = 1,
    upstream: Upstream | None = None,
) -> FastAPI:
    """The service app over ``mem`` (one store shared by every tenant).

    ``auth=False`` makes every caller tenant ``local`` with every scope (the
    CLI allows it only on loopback). ``own_memos`` closes ``mem`` at shutdown.
    ``threads`` run each worker's memory work (see :mod:`memos.service.executor`).
    ``upstream`` answers ``/v1/chat/completions`` in place of the local model.
    """
    metrics_registry = Metrics()
    mcp_server = None
    if mcp:
        from memos.service.mcp_server import build_mcp_server

        mcp_server = build_mcp_server(None)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state: ServiceState = app.state.memos
        state.background = job_executor()  # fresh on every start (tests restart lifespans)
        try:
            if mcp_server is None:
                yield
            else:
                from memos.service.mcp_server import session_manager

                async with session_manager(mcp_server, max_body_size, auth):
                    yield
        finally:
            state.background.shutdown(wait=True)  # a queued run finishes first
            if own_memos:
                mem.close()

    app = FastAPI(
        title="memos",
        version="0.1.0",
        description="Agent memory as a service: cubes, items, search and context per tenant.",
        lifespan=lifespan,
        max_body_size=max_body_size,
    )
    app.state.memos = ServiceState(mem, auth, metrics_registry, threads, upstream)
    http_errors.install(app)
    # The routers' routes already carry their prefix and documented errors; adding
    # them directly keeps ``app.routes`` a plain list the isolation test walks.
    app.router.routes.extend(
        [*v1.routes, *openai_compat.router.routes, *ui.router.routes, *ops.routes]
    )
    if mcp_server is not None:
        from memos.service.mcp_server import mount

        mount(app, mcp_server, caller)
    # Outermost, around Starlette's own error middleware: it also counts the
    # 413s and 500s answered before or outside the routes.
    build_stack = app.build_middleware_stack

    def stack() -> Any:
        guarded = RequestGuard(build_stack(), max_body_size=max_body_size, auth=auth)
        return MetricsMiddleware(guarded, metrics_registry)

    app.build_middleware_stack = stack  # type: ignore[method-assign]
    return app


def app_from_env() -> FastAPI:
    """The app for ``memos serve`` workers, configured by ``MEMOS_*`` variables."""
    import sys

    threads = os.environ.get("OMP_NUM_THREADS", "")
    if "torch" in sys.modules and threads.isdigit():
        # torch was loaded before `memos serve` set the worker's share of the
        # cores (one worker runs in its process): apply the share now
        sys.modules["torch"].set_num_threads(int(threads))
    mem = Memos(MemosConfig.from_env())
    return create_app(
        mem,
        auth=os.environ.get("MEMOS_SERVICE_NO_AUTH") != "1",
        max_body_size=int(os.environ.get("MEMOS_SERVICE_MAX_BODY") or DEFAULT_MAX_BODY),
        own_memos=True,
        threads=int(os.environ.get("MEMOS_SERVICE_THREADS") or 1),
        upstream=Upstream.from_env(),
    )
