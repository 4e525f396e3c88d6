"""Who is calling: the API key of a request, its tenant's view, its scopes.

Every ``/v1`` route takes its caller from one of :data:`Reader`, :data:`Writer`
or :data:`Admin`: the key comes from the worker's :class:`~memos.service.keys.KeyCache`,
which reads the database only when something changed (and a revocation then
holds from the next request in every worker), and the caller reaches memory
only through its tenant's :class:`~memos.service.tenancy.TenantMemos`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Path, Request
from starlette.concurrency import run_in_threadpool

from memos.client import Memos
from memos.service import keys
from memos.service.batching import AddBatcher
from memos.service.executor import WorkQueue
from memos.service.metrics import TENANT_KEY, Metrics
from memos.service.tenancy import TenantMemos

if TYPE_CHECKING:
    from memos.service.openai_compat import Upstream
from memos.validation import CUBE_NAME_MAX_CHARS, LOCAL_TENANT

log = logging.getLogger("memos.service")


@dataclass(frozen=True)
class Caller:
    """Who is asking: their key, their tenant's view of memory, and the service
    state (the worker's work queues and add batcher) their request runs on."""

    key: keys.KeyInfo
    memos: TenantMemos
    state: ServiceState


def job_executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="memos-jobs")


class ServiceState:
    """What the routes share: the store, the auth switch, the metrics, the key
    cache, the work queues (memory work on ``threads`` threads, the language
    model on one of its own), the add batcher, and one background thread that
    applies queued scheduler runs in order; and the upstream model, if any
    (:mod:`memos.service.openai_compat`)."""

    def __init__(
        self,
        mem: Memos,
        auth: bool,
        metrics: Metrics,
        threads: int = 1,
        upstream: Upstream | None = None,
    ) -> None:
        self.mem = mem
        self.upstream = upstream
        self.core = mem.core
        self.auth = auth
        self.metrics = metrics
        self.background = job_executor()
        self.keys = keys.KeyCache(self.core.db, self.core.watch_changes())
        self.work = WorkQueue(threads, prime=self.core.query_vectors.prime)
        self.model = WorkQueue(1)
        self.adds = AddBatcher(self.work, mem.writer.store)

    def apply_later(self, memos: TenantMemos, job_ids: list[str]) -> None:
        def work() -> None:
            try:
                memos.apply_jobs(job_ids)
            except Exception:  # the jobs stay planned; the next run finishes them
                log.exception("queued scheduler run failed to start")

        self.background.submit(work)


def state_of(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.memos
    return state


def presented_key(request: Request) -> str | None:
    """The key an ``Authorization: Bearer <key>`` header presents, if any."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def caller(request: Request) -> Caller:
    """The caller of a request, from ``Authorization: Bearer <key>`` (may read
    the database: off the event loop)."""
    state = state_of(request)
    if not state.auth:
        key = keys.KeyInfo(
            "no-auth", LOCAL_TENANT, None, keys.SCOPES, "", state.core.clock.now(), None
        )
    else:
        key = state.keys.authenticate(presented_key(request))
    return Caller(key, TenantMemos(state.mem, key.tenant), state)


async def caller_of(request: Request) -> Caller:
    """:func:`caller`, answered on the event loop when the key cache holds the key
    and nothing changed (no database read), else in the threadpool."""
    state = state_of(request)
    key = state.keys.cached(presented_key(request)) if state.auth else None
    if key is not None:
        return Caller(key, TenantMemos(state.mem, key.tenant), state)
    return await run_in_threadpool(caller, request)


def scoped(scope: str) -> Callable[[Request], Awaitable[Caller]]:
    async def dependency(request: Request) -> Caller:
        found = await caller_of(request)
        request.scope.setdefault("state", {})[TENANT_KEY] = found.key.tenant
        found.key.require(scope)
        return found

    dependency.__name__ = f"{scope}_caller"
    return dependency


CubeName = Annotated[
    str,
    Path(
        min_length=1,
        max_length=CUBE_NAME_MAX_CHARS,
        description="A cube of the caller's tenant (checked by memos.validation.check_cube_name).",
    ),
]
Reader = Annotated[Caller, Depends(scoped("read"))]
Writer = Annotated[Caller, Depends(scoped("write"))]
Admin = Annotated[Caller, Depends(scoped("admin"))]
