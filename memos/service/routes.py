"""The ``/v1`` routes: the SDK's calls over a tenant's view of one store.

Routes are plain functions of memory, run off the event loop on the worker's
work queue (:func:`memos.service.offload.offload`: reads before writes, the
language model on a queue of its own), and each takes its caller from
:mod:`memos.service.callers`, so reads need ``read``, changes ``write``,
purge, import and the scheduler ``admin``. Single adds are batched
(:mod:`memos.service.batching`). The routes that reach the language model (snapshot builds,
training, attach and detach, chat) need ``write``: they spend the shared
model's time and change what it serves.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.responses import Response

from memos.errors import ImportFormatError
from memos.parametric.config import TrainConfig
from memos.records import (
    AdapterInfo,
    ContextBlock,
    CubeStats,
    ImportReport,
    JobInfo,
    MemoryRecord,
    MemoryVersion,
    Reply,
    SearchHit,
    SnapshotInfo,
    StateChange,
)
from memos.service import http_errors
from memos.service.callers import Admin, CubeName, Reader, Writer, state_of
from memos.service.executor import WRITE
from memos.service.offload import offload, respond
from memos.service.schemas import (
    AddIn,
    AddManyIn,
    ChatIn,
    ContextIn,
    CubeIn,
    CubeList,
    DecayIn,
    DocumentIn,
    ErrorOut,
    FilterIn,
    Limits,
    ListIn,
    MarkUsedIn,
    MessagesIn,
    RunQueued,
    SearchIn,
    SnapshotIn,
    TrainIn,
    UpdateIn,
    train_options,
)
from memos.service.tenancy import public
from memos.validation import CUBE_NAME_MAX_CHARS

JobStatus = Literal["planned", "running", "done", "failed"]

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in http_errors.DOCUMENTED
}
v1 = APIRouter(prefix="/v1", responses=_ERRORS)


# -- cubes -------------------------------------------------------------------------


@v1.get("/limits", response_model=Limits)
@offload()
def limits(who: Reader) -> Limits:
    """The store's limits on what callers send (checked by the remote SDK first)."""
    return Limits(max_text_chars=who.memos.max_text_chars)


@v1.get("/cubes", response_model=CubeList)
@offload()
def list_cubes(who: Reader) -> CubeList:
    return CubeList(cubes=who.memos.cubes())


@v1.post("/cubes", response_model=CubeList, status_code=201)
@offload(WRITE, 201)
def create_cube(body: CubeIn, who: Writer) -> CubeList:
    who.memos.create_cube(body.name, body.owner_id)
    return CubeList(cubes=who.memos.cubes())


@v1.get("/cubes/{cube}/stats", response_model=CubeStats)
@offload()
def cube_stats(cube: CubeName, who: Reader) -> CubeStats:
    return who.memos.stats(cube)


# -- adding ------------------------------------------------------------------------


@v1.post("/cubes/{cube}/items", response_model=MemoryRecord, status_code=201)
async def add_item(cube: CubeName, body: AddIn, who: Writer) -> Response:
    """Store one memory. Concurrent adds of a worker share one embedding call and
    one transaction (:mod:`memos.service.batching`); the answer comes once this
    item is committed."""
    fields = body.fields()
    stored, item = who.memos.checked_add(fields.pop("text"), cube, fields)
    record = await who.state.adds.add(stored, item)
    return respond(public(record), MemoryRecord, 201)


@v1.post("/cubes/{cube}/items/batch", response_model=list[MemoryRecord], status_code=201)
@offload(WRITE, 201)
def add_items(cube: CubeName, body: AddManyIn, who: Writer) -> list[MemoryRecord]:
    return who.memos.add_many([entry.fields() for entry in body.items], cube=cube)


@v1.post("/cubes/{cube}/messages", response_model=list[MemoryRecord], status_code=201)
@offload(WRITE, 201)
def add_messages(cube: CubeName, body: MessagesIn, who: Writer) -> list[MemoryRecord]:
    defaults = body.defaults.fields() if body.defaults else {}
    return who.memos.add_messages(
        [m.model_dump(exclude_none=True) for m in body.messages],
        cube=cube,
        prefix_speaker=body.prefix_speaker,
        **defaults,
    )


@v1.post("/cubes/{cube}/documents", response_model=list[MemoryRecord], status_code=201)
@offload(WRITE, 201)
def add_document(cube: CubeName, body: DocumentIn, who: Writer) -> list[MemoryRecord]:
    fields = body.fields()
    return who.memos.add_document(fields.pop("text"), cube=cube, **fields)


# -- reading -----------------------------------------------------------------------


@v1.get("/cubes/{cube}/items", response_model=list[MemoryRecord])
@offload()
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


@v1.post("/cubes/{cube}/items/query", response_model=list[MemoryRecord])
@offload()
def query_items(cube: CubeName, body: ListIn, who: Reader) -> list[MemoryRecord]:
    """A page of the cube's items matching any filter, newest first (``Memos.list``)."""
    flt = body.filter.to_filter() if body.filter else None
    return who.memos.list(cube=cube, filter=flt, limit=body.limit, offset=body.offset)


def _query_of(arguments: dict[str, Any]) -> str | None:
    """The text a search or context call will embed (none for keyword search)."""
    body = arguments["body"]
    return None if getattr(body, "mode", "hybrid") == "keyword" else body.query


@v1.post("/cubes/{cube}/search", response_model=list[SearchHit])
@offload(embeds=_query_of)
def search(cube: CubeName, body: SearchIn, who: Reader) -> list[SearchHit]:
    flt = body.filter.to_filter() if body.filter else None
    return who.memos.search(body.query, cube=cube, k=body.k, filter=flt, mode=body.mode)


@v1.post("/cubes/{cube}/context", response_model=ContextBlock)
@offload(embeds=_query_of)
def context(cube: CubeName, body: ContextIn, who: Reader) -> ContextBlock:
    flt = body.filter.to_filter() if body.filter else None
    return who.memos.context(
        body.query, budget_tokens=body.budget_tokens, cube=cube, k=body.k, filter=flt
    )


@v1.get("/items/{item_id}", response_model=MemoryRecord)
@offload()
def get_item(item_id: str, who: Reader) -> MemoryRecord:
    return who.memos.get(item_id)


@v1.get("/items/{item_id}/history", response_model=list[MemoryVersion])
@offload()
def item_history(item_id: str, who: Reader) -> list[MemoryVersion]:
    return who.memos.history(item_id)


@v1.post("/recalls", status_code=204)
@offload(status=204)
def mark_used(body: MarkUsedIn, who: Reader) -> None:
    who.memos.mark_used(body.ids)


# -- changing ----------------------------------------------------------------------


@v1.patch("/items/{item_id}", response_model=MemoryRecord)
@offload(WRITE)
def update_item(item_id: str, body: UpdateIn, who: Writer) -> MemoryRecord:
    fields = body.fields()
    text = fields.pop("text", None)
    return who.memos.update(item_id, text, **fields)


@v1.delete("/items/{item_id}", response_model=MemoryRecord)
@offload(WRITE)
def delete_item(item_id: str, who: Writer, reason: str = "user") -> MemoryRecord:
    return who.memos.delete(item_id, reason)


@v1.post("/items/{item_id}/restore", response_model=MemoryRecord)
@offload(WRITE)
def restore_item(item_id: str, who: Writer) -> MemoryRecord:
    return who.memos.restore(item_id)


@v1.post("/items/{item_id}/purge", status_code=204)
@offload(WRITE, 204)
def purge_item(item_id: str, who: Admin, reason: str = "user") -> None:
    who.memos.purge(item_id, reason)


@v1.post("/cubes/{cube}/decay", response_model=list[StateChange])
@offload(WRITE)
def decay(cube: CubeName, body: DecayIn, who: Writer) -> list[StateChange]:
    return who.memos.decay(cube=cube, now=body.now, dry_run=body.dry_run)


# -- export and import -------------------------------------------------------------


@v1.get(
    "/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {"schema": {"type": "string"}}}}},
)
def export_items(
    who: Reader,
    cube: Annotated[str | None, Query(min_length=1, max_length=CUBE_NAME_MAX_CHARS)] = None,
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
    request: Request,
    who: Admin,
    cube: Annotated[str | None, Query(min_length=1, max_length=CUBE_NAME_MAX_CHARS)] = None,
) -> ImportReport:
    """Import an export (JSON lines) into the caller's cubes; existing ids are skipped."""
    try:
        text = (await request.body()).decode("utf-8")
    except UnicodeDecodeError:
        raise ImportFormatError("the import body is not UTF-8") from None
    report = await who.state.work.run(
        lambda: who.memos.import_jsonl(io.StringIO(text), cube=cube), WRITE
    )
    return report


# -- scheduler and jobs ------------------------------------------------------------


@v1.post("/cubes/{cube}/scheduler/plan", response_model=dict[str, Any])
@offload()
def scheduler_plan(cube: CubeName, who: Admin) -> dict[str, Any]:
    """What a scheduler run on the cube would do now (nothing is written)."""
    return who.memos.plan(cube)


@v1.post("/cubes/{cube}/scheduler/run", response_model=RunQueued, status_code=202)
@offload(WRITE, 202)
def scheduler_run(cube: CubeName, who: Admin, request: Request) -> RunQueued:
    """Queue a scheduler run of the cube: its steps become jobs (follow them at
    ``GET /v1/jobs/{id}``), applied in the background in order."""
    run_id, job_ids = who.memos.enqueue_run(cube)
    state_of(request).apply_later(who.memos, job_ids)
    return RunQueued(run_id=run_id, jobs=job_ids)


@v1.get("/jobs", response_model=list[JobInfo])
@offload()
def list_jobs(
    who: Reader,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    status: Annotated[list[JobStatus] | None, Query()] = None,
) -> list[JobInfo]:
    return who.memos.jobs(status, limit=limit)


@v1.get("/jobs/{job_id}", response_model=JobInfo)
@offload()
def get_job(job_id: str, who: Reader) -> JobInfo:
    return who.memos.job(job_id)


OptionalCube = Annotated[str | None, Query(min_length=1, max_length=CUBE_NAME_MAX_CHARS)]


@v1.get("/snapshots", response_model=list[SnapshotInfo])
@offload()
def list_snapshots(who: Reader, cube: OptionalCube = None) -> list[SnapshotInfo]:
    return who.memos.snapshots(cube)


@v1.delete("/snapshots/{snapshot_id}", status_code=204)
@offload(WRITE, 204)
def remove_snapshot(snapshot_id: str, who: Writer) -> None:
    who.memos.remove_snapshot(snapshot_id)


@v1.get("/adapters", response_model=list[AdapterInfo])
@offload()
def list_adapters(who: Reader, cube: OptionalCube = None) -> list[AdapterInfo]:
    return who.memos.adapters(cube)


@v1.delete("/adapters/{adapter_id}", status_code=204)
@offload(WRITE, 204)
def remove_adapter(adapter_id: str, who: Writer) -> None:
    who.memos.remove_adapter(adapter_id)


# -- the language model ------------------------------------------------------------


@v1.post("/cubes/{cube}/snapshots", response_model=RunQueued, status_code=202)
@offload(WRITE, 202)
def build_snapshot(cube: CubeName, body: SnapshotIn, who: Writer, request: Request) -> RunQueued:
    """Queue a KV snapshot of the cube's memories (the given items, the best for
    ``query``, or the newest). The items are chosen now; the build is a job
    (``GET /v1/jobs/{id}``; its result's ``artifact`` is the snapshot id)."""
    run_id, job_ids = who.memos.enqueue_snapshot(
        cube, items=body.items, query=body.query, max_tokens=body.max_tokens, dtype=body.dtype
    )
    state_of(request).apply_later(who.memos, job_ids)
    return RunQueued(run_id=run_id, jobs=job_ids)


@v1.post("/cubes/{cube}/adapters", response_model=RunQueued, status_code=202)
@offload(WRITE, 202)
def train_adapter(cube: CubeName, body: TrainIn, who: Writer, request: Request) -> RunQueued:
    """Queue training a side-GLU adapter on the cube's memories (the given items,
    or those matching ``filter``) with ``TrainConfig`` settings. Training is a
    job (``GET /v1/jobs/{id}``; its result's ``artifact`` is the adapter id);
    the adapter starts detached."""
    config = TrainConfig.from_options(train_options(body))
    flt = body.filter.to_filter() if body.filter else None
    run_id, job_ids = who.memos.enqueue_training(cube, items=body.items, filter=flt, config=config)
    state_of(request).apply_later(who.memos, job_ids)
    return RunQueued(run_id=run_id, jobs=job_ids)


@v1.post("/adapters/{adapter_id}/attach", response_model=AdapterInfo)
@offload(WRITE, queue="model")
def attach_adapter(adapter_id: str, who: Writer) -> AdapterInfo:
    """Attach an adapter: its cube's chats are answered with it on the model.

    The attached flag is a database row, not worker state: before generating,
    every process (each uvicorn worker) puts exactly its cube's attached,
    non-stale adapters on its own model (``ParametricTier.sync``), so an attach
    or detach made through one worker holds for the next chat in any worker.
    A stale adapter (a source changed) cannot be attached (400).
    """
    return who.memos.attach_adapter(adapter_id)


@v1.post("/adapters/{adapter_id}/detach", response_model=AdapterInfo)
@offload(WRITE, queue="model")
def detach_adapter(adapter_id: str, who: Writer) -> AdapterInfo:
    """Detach an adapter (its file stays). Recorded in the database, so every
    worker takes it off its model before its next chat in the cube
    (``ParametricTier.sync``)."""
    return who.memos.detach_adapter(adapter_id)


@v1.post("/cubes/{cube}/chat", response_model=Reply)
@offload(WRITE, queue="model")
def chat(cube: CubeName, body: ChatIn, who: Writer) -> Reply:
    """Answer a message with the cube's memories (its attached adapters, its newest
    valid snapshot, else its best memories as text), greedily.

    Needs ``write``, not ``read``: besides counting the memories it reads as
    recalled (as context does), it spends the shared model's time, puts the
    cube's adapters on the worker's model and records snapshot use.
    """
    return who.memos.chat(
        body.message,
        cube=cube,
        history=[turn.model_dump() for turn in body.history],
        max_new_tokens=body.max_new_tokens,
        use_snapshot=body.use_snapshot,
    )
