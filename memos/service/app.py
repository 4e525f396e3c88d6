"""The HTTP app: ``/v1`` routes over a tenant's view of one store, plus health and metrics.

Every ``/v1`` route takes its caller from :func:`caller` (an API key read from
the database on each request, so revocation holds at once in every worker)
and reaches memory only through that caller's
:class:`~memos.service.tenancy.TenantMemos`. Scopes: reads need ``read``,
changes ``write``, purge and import ``admin``. Routes are plain ``def``: they
run in the threadpool, and the store is thread-safe.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.responses import PlainTextResponse, StreamingResponse
from sqlalchemy import func, select

from memos.client import Memos
from memos.config import MemosConfig
from memos.errors import ImportFormatError
from memos.lifecycle.decay import StateChange
from memos.records import (
    ContextBlock,
    CubeStats,
    ImportReport,
    MemoryRecord,
    MemoryVersion,
    SearchHit,
)
from memos.scheduler.jobs import JobInfo
from memos.service import http_errors, keys
from memos.service.metrics import Metrics, MetricsMiddleware
from memos.service.schemas import (
    CUBE_NAME,
    AddIn,
    AddManyIn,
    ContextIn,
    CubeIn,
    CubeList,
    DecayIn,
    DocumentIn,
    ErrorOut,
    FilterIn,
    Health,
    MarkUsedIn,
    MessagesIn,
    RunQueued,
    SearchIn,
    UpdateIn,
)
from memos.service.tenancy import TenantMemos
from memos.store import schema
from memos.store.cubes import split_name
from memos.store.models import LOCAL_TENANT, Cube, Item

DEFAULT_MAX_BODY = 16 * 1024 * 1024
log = logging.getLogger("memos.service")


@dataclass(frozen=True)
class Caller:
    """Who is asking: their key and their tenant's view of memory."""

    key: keys.KeyInfo
    memos: TenantMemos


def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="memos-jobs")


class _State:
    """What the routes share: the store, the auth switch, the metrics, and one
    background thread that applies queued scheduler runs in order."""

    def __init__(self, mem: Memos, auth: bool, metrics: Metrics) -> None:
        self.mem = mem
        self.auth = auth
        self.metrics = metrics
        self.background = _executor()

    def apply_later(self, memos: TenantMemos, job_ids: list[str]) -> None:
        def work() -> None:
            try:
                memos.apply_jobs(job_ids)
            except Exception:  # the jobs stay planned; the next run finishes them
                log.exception("queued scheduler run failed to start")

        self.background.submit(work)


def _state(request: Request) -> _State:
    state: _State = request.app.state.memos
    return state


def caller(request: Request) -> Caller:
    """The caller of a request, from ``Authorization: Bearer <key>``."""
    state = _state(request)
    if not state.auth:
        key = keys.KeyInfo(
            "no-auth", LOCAL_TENANT, None, keys.SCOPES, "", state.mem.clock.now(), None
        )
    else:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        key = keys.authenticate(state.mem.db, token.strip() if scheme.lower() == "bearer" else None)
    return Caller(key, TenantMemos(state.mem, key.tenant))


def _scoped(scope: str) -> Callable[[Request], Awaitable[Caller]]:
    # On the event loop, not in the threadpool: the key lookup is one indexed
    # read (~0.2 ms), cheaper than a thread hop on a busy machine (measured:
    # each hop cost about 1 ms of search p50 on 2 shared cores).
    async def dependency(request: Request) -> Caller:
        found = caller(request)
        found.key.require(scope)
        return found

    dependency.__name__ = f"{scope}_caller"
    return dependency


CubeName = Annotated[str, Path(pattern=CUBE_NAME, description="A cube of the caller's tenant.")]
Reader = Annotated[Caller, Depends(_scoped("read"))]
Writer = Annotated[Caller, Depends(_scoped("write"))]
Admin = Annotated[Caller, Depends(_scoped("admin"))]
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in http_errors.DOCUMENTED
}
v1 = APIRouter(prefix="/v1", responses=_ERRORS)


# -- cubes -------------------------------------------------------------------------


@v1.get("/cubes", response_model=CubeList)
def list_cubes(who: Reader) -> CubeList:
    return CubeList(cubes=who.memos.cubes())


@v1.post("/cubes", response_model=CubeList, status_code=201)
def create_cube(body: CubeIn, who: Writer) -> CubeList:
    who.memos.create_cube(body.name)
    return CubeList(cubes=who.memos.cubes())


@v1.get("/cubes/{cube}/stats", response_model=CubeStats)
def cube_stats(cube: CubeName, who: Reader) -> CubeStats:
    return who.memos.stats(cube)


# -- adding ------------------------------------------------------------------------


@v1.post("/cubes/{cube}/items", response_model=MemoryRecord, status_code=201)
def add_item(cube: CubeName, body: AddIn, who: Writer) -> MemoryRecord:
    fields = body.fields()
    return who.memos.add(fields.pop("text"), cube=cube, **fields)


@v1.post("/cubes/{cube}/items/batch", response_model=list[MemoryRecord], status_code=201)
def add_items(cube: CubeName, body: AddManyIn, who: Writer) -> list[MemoryRecord]:
    return who.memos.add_many([entry.fields() for entry in body.items], cube=cube)


@v1.post("/cubes/{cube}/messages", response_model=list[MemoryRecord], status_code=201)
def add_messages(cube: CubeName, body: MessagesIn, who: Writer) -> list[MemoryRecord]:
    defaults = body.defaults.fields() if body.defaults else {}
    return who.memos.add_messages(
        [m.model_dump(exclude_none=True) for m in body.messages],
        cube=cube,
        prefix_speaker=body.prefix_speaker,
        **defaults,
    )


@v1.post("/cubes/{cube}/documents", response_model=list[MemoryRecord], status_code=201)
def add_document(cube: CubeName, body: DocumentIn, who: Writer) -> list[MemoryRecord]:
    fields = body.fields()
    return who.memos.add_document(fields.pop("text"), cube=cube, **fields)


# -- reading -----------------------------------------------------------------------


@v1.get("/cubes/{cube}/items", response_model=list[MemoryRecord])
def list_items(
    cube: CubeName,
    who: Reader,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    tag: Annotated[list[str] | None, Query()] = None,
    state: Annotated[list[str] | None, Query()] = None,
    user_id: str | None = None,
    agent_id: str | None = None,
    session_id: str | None = None,
    speaker: str | None = None,
    role: str | None = None,
) -> list[MemoryRecord]:
    flt = FilterIn(
        tags=tag,
        states=state,
        user_id=user_id,
        agent_id=agent_id,
        session_id=session_id,
        speaker=speaker,
        role=role,
    )
    return who.memos.list(cube=cube, filter=flt.to_filter(), limit=limit, offset=offset)


@v1.post("/cubes/{cube}/search", response_model=list[SearchHit])
def search(cube: CubeName, body: SearchIn, who: Reader) -> list[SearchHit]:
    flt = body.filter.to_filter() if body.filter else None
    return who.memos.search(body.query, cube=cube, k=body.k, filter=flt, mode=body.mode)


@v1.post("/cubes/{cube}/context", response_model=ContextBlock)
def context(cube: CubeName, body: ContextIn, who: Reader) -> ContextBlock:
    flt = body.filter.to_filter() if body.filter else None
    return who.memos.context(
        body.query, budget_tokens=body.budget_tokens, cube=cube, k=body.k, filter=flt
    )


@v1.get("/items/{item_id}", response_model=MemoryRecord)
def get_item(item_id: str, who: Reader) -> MemoryRecord:
    return who.memos.get(item_id)


@v1.get("/items/{item_id}/history", response_model=list[MemoryVersion])
def item_history(item_id: str, who: Reader) -> list[MemoryVersion]:
    return who.memos.history(item_id)


@v1.post("/recalls", status_code=204)
def mark_used(body: MarkUsedIn, who: Reader) -> None:
    who.memos.mark_used(body.ids)


# -- changing ----------------------------------------------------------------------


@v1.patch("/items/{item_id}", response_model=MemoryRecord)
def update_item(item_id: str, body: UpdateIn, who: Writer) -> MemoryRecord:
    fields = body.fields()
    text = fields.pop("text", None)
    return who.memos.update(item_id, text, **fields)


@v1.delete("/items/{item_id}", response_model=MemoryRecord)
def delete_item(item_id: str, who: Writer, reason: str = "user") -> MemoryRecord:
    return who.memos.delete(item_id, reason)


@v1.post("/items/{item_id}/restore", response_model=MemoryRecord)
def restore_item(item_id: str, who: Writer) -> MemoryRecord:
    return who.memos.restore(item_id)


@v1.post("/items/{item_id}/purge", status_code=204)
def purge_item(item_id: str, who: Admin, reason: str = "user") -> None:
    who.memos.purge(item_id, reason)


@v1.post("/cubes/{cube}/decay", response_model=list[StateChange])
def decay(cube: CubeName, body: DecayIn, who: Writer) -> list[StateChange]:
    return who.memos.decay(cube=cube, dry_run=body.dry_run)


# -- export and import -------------------------------------------------------------


@v1.get(
    "/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {"schema": {"type": "string"}}}}},
)
def export_items(
    who: Reader, cube: Annotated[str | None, Query(pattern=CUBE_NAME)] = None
) -> StreamingResponse:
    """The caller's items (one cube, or all) as JSON lines, header first, streamed."""
    lines = who.memos.export_lines(cube)
    first = next(lines)  # an unknown cube fails here, before the 200 is sent
    return StreamingResponse(_chain(first, lines), media_type="application/x-ndjson")


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


_NDJSON_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
    }
}


@v1.post("/import", response_model=ImportReport, openapi_extra=_NDJSON_BODY)
async def import_items(
    request: Request, who: Admin, cube: Annotated[str | None, Query(pattern=CUBE_NAME)] = None
) -> ImportReport:
    """Import an export (JSON lines) into the caller's cubes; existing ids are skipped."""
    try:
        text = (await request.body()).decode("utf-8")
    except UnicodeDecodeError:
        raise ImportFormatError("the import body is not UTF-8") from None
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(who.memos.import_jsonl, io.StringIO(text), cube=cube)


# -- scheduler and jobs ------------------------------------------------------------


@v1.post("/cubes/{cube}/scheduler/plan", response_model=dict[str, Any])
def scheduler_plan(cube: CubeName, who: Admin) -> dict[str, Any]:
    """What a scheduler run on the cube would do now (nothing is written)."""
    return who.memos.plan(cube)


@v1.post("/cubes/{cube}/scheduler/run", response_model=RunQueued, status_code=202)
def scheduler_run(cube: CubeName, who: Admin, request: Request) -> RunQueued:
    """Queue a scheduler run of the cube: its steps become jobs (follow them at
    ``GET /v1/jobs/{id}``), applied in the background in order."""
    run_id, job_ids = who.memos.enqueue_run(cube)
    _state(request).apply_later(who.memos, job_ids)
    return RunQueued(run_id=run_id, jobs=job_ids)


@v1.get("/jobs", response_model=list[JobInfo])
def list_jobs(who: Reader, limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[JobInfo]:
    return who.memos.jobs(limit=limit)


@v1.get("/jobs/{job_id}", response_model=JobInfo)
def get_job(job_id: str, who: Reader) -> JobInfo:
    return who.memos.job(job_id)


@v1.get("/snapshots", response_model=list[dict[str, Any]])
def list_snapshots(who: Reader, cube: str | None = None) -> list[dict[str, Any]]:
    return [s.to_dict() for s in who.memos.snapshots(cube)]


@v1.delete("/snapshots/{snapshot_id}", status_code=204)
def remove_snapshot(snapshot_id: str, who: Writer) -> None:
    who.memos.remove_snapshot(snapshot_id)


@v1.get("/adapters", response_model=list[dict[str, Any]])
def list_adapters(who: Reader, cube: str | None = None) -> list[dict[str, Any]]:
    return [a.to_dict() for a in who.memos.adapters(cube)]


@v1.delete("/adapters/{adapter_id}", status_code=204)
def remove_adapter(adapter_id: str, who: Writer) -> None:
    who.memos.remove_adapter(adapter_id)


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
        current = schema.status(_state(request).mem.db).current
    except Exception:  # a down database is the answer, not an error
        return JSONResponse(Health(status="database unreachable").model_dump(), 503)
    if current != schema.HEAD:
        return JSONResponse(
            Health(status="schema not at head", schema_revision=current).model_dump(), 503
        )
    return Health(status="ok", schema_revision=current)


@ops.get("/metrics", response_class=PlainTextResponse)
def metrics(request: Request, who: Annotated[Caller, Depends(_scoped("admin"))]) -> str:
    """Prometheus text: requests and latency by route; the caller's items by cube and state."""
    state = _state(request)
    with state.mem.db.read() as session:
        rows = session.execute(
            select(Cube.name, Item.state, func.count())
            .join(Item, Item.cube_pk == Cube.pk)
            .where(Cube.tenant == who.key.tenant)
            .group_by(Cube.name, Item.state)
            .order_by(Cube.name, Item.state)
        ).all()
    items = [(split_name(name)[1], item_state, int(n)) for name, item_state, n in rows]
    return state.metrics.render(items)


# -- the app -----------------------------------------------------------------------


def create_app(
    mem: Memos,
    *,
    auth: bool = True,
    max_body_size: int = DEFAULT_MAX_BODY,
    mcp: bool = True,
    own_memos: bool = False,
) -> FastAPI:
    """The service app over ``mem`` (one store shared by every tenant).

    ``auth=False`` makes every caller tenant ``local`` with every scope (the
    CLI allows it only on loopback). ``own_memos`` closes ``mem`` at shutdown.
    """
    metrics_registry = Metrics()
    mcp_server = None
    if mcp:
        from memos.service.mcp_server import build_mcp_server

        mcp_server = build_mcp_server(None)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state: _State = app.state.memos
        state.background = _executor()  # fresh on every start (tests restart lifespans)
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
    app.state.memos = _State(mem, auth, metrics_registry)
    http_errors.install(app)
    # The routers' routes already carry their prefix and documented errors; adding
    # them directly keeps ``app.routes`` a plain list the isolation test walks.
    app.router.routes.extend([*v1.routes, *ops.routes])
    if mcp_server is not None:
        from memos.service.mcp_server import mount

        mount(app, mcp_server, caller)
    # Outermost, around Starlette's own error middleware: it also counts the
    # 413s and 500s answered before or outside the routes.
    build_stack = app.build_middleware_stack
    app.build_middleware_stack = lambda: MetricsMiddleware(build_stack(), metrics_registry)  # type: ignore[method-assign]
    return app


def app_from_env() -> FastAPI:
    """The app for ``memos serve`` workers, configured by ``MEMOS_*`` variables."""
    mem = Memos(MemosConfig.from_env())
    return create_app(
        mem,
        auth=os.environ.get("MEMOS_SERVICE_NO_AUTH") != "1",
        max_body_size=int(os.environ.get("MEMOS_SERVICE_MAX_BODY") or DEFAULT_MAX_BODY),
        own_memos=True,
    )
