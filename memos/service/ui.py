"""``/ui``: server-rendered pages to look at a tenant's memory.

Behind the same API keys as ``/v1``: the key is given once on ``/ui/login``
and kept in an ``HttpOnly``, ``SameSite=Strict`` cookie scoped to ``/ui`` (a
request may also send ``Authorization: Bearer``). Every page reads through the
caller's :class:`~memos.service.tenancy.TenantMemos`, so another tenant's cubes,
items and artifacts never appear. Pages are read-only unless the key can
write; then an item's page can delete and restore it (a form posted from this
same origin: the cookie is never sent cross-site, and the ``Origin`` is checked).

The pages: the cubes (items by state, tiers); a cube (tier distribution, the
retention histogram and curves, search with score parts, items with their
state, retention and tiers, its snapshots and adapters); an item (its fields,
retention curve and history); the jobs, snapshots and adapters.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from memos.errors import AuthError, ForbiddenError, MemosError
from memos.lifecycle.inspection import Inspection, inspect_store, item_tiers
from memos.records import MemoryRecord, State
from memos.retention import RetentionPolicy
from memos.service import http_errors
from memos.service.callers import Caller, caller, presented_key, state_of
from memos.service.executor import READ, WRITE
from memos.service.tenancy import TenantMemos

COOKIE = "memos_ui_key"
PAGE = 50
#: Days ahead the retention curves are drawn.
CURVE_DAYS = 30
CURVE_ITEMS = 8

router = APIRouter(prefix="/ui", include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


# -- who is looking -------------------------------------------------------------------


async def _viewer(request: Request) -> Caller | None:
    """The caller of a page (from the cookie, else a bearer header), or ``None``."""
    state = state_of(request)
    if not state.auth:
        return await run_in_threadpool(caller, request)
    presented = request.cookies.get(COOKIE) or presented_key(request)
    if not presented:
        return None
    try:
        key = await run_in_threadpool(state.keys.authenticate, presented)
    except AuthError:
        return None
    return Caller(key, TenantMemos(state.mem, key.tenant), state)


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser's cross-site form (those always send Origin)
    return urlsplit(origin).netloc == request.headers.get("host")


async def _run(
    request: Request,
    build: Callable[[Caller], dict[str, Any]],
    scope: str = "read",
    lane: str = READ,
) -> tuple[Caller, dict[str, Any]] | Response:
    """What ``build`` reads (or does) for the viewer, on the work queue; else the
    answer instead: the login page, or a typed error's page."""
    who = await _viewer(request)
    if who is None:
        return RedirectResponse(f"/ui/login?next={quote(request.url.path)}", status_code=303)
    try:
        who.key.require(scope)
        return who, await who.state.work.run(functools.partial(build, who), lane)
    except MemosError as exc:
        status = http_errors.status_of(exc)
        if status == 500:
            raise
        return _render(request, who, "error.html", {"error": exc}, status)


async def _page(
    request: Request, template: str, build: Callable[[Caller], dict[str, Any]]
) -> Response:
    """``template`` rendered with what ``build`` reads for the viewer."""
    found = await _run(request, build)
    if isinstance(found, Response):
        return found
    return _render(request, *found[:1], template, found[1])


def _render(
    request: Request, who: Caller | None, template: str, found: dict[str, Any], status: int = 200
) -> Response:
    context = {
        "tenant": who.key.tenant if who else None,
        "can_write": bool(who and who.key.allows("write")),
        "auth": state_of(request).auth,
        **found,
    }
    return templates.TemplateResponse(request, template, context, status_code=status)


# -- login -------------------------------------------------------------------------------


@router.get("/login")
async def login_form(request: Request, next: str = "/ui") -> Response:
    return _render(request, None, "login.html", {"next": _local_path(next), "failed": False})


@router.post("/login")
async def login(request: Request, key: str = Form(""), next: str = Form("/ui")) -> Response:
    state = state_of(request)
    try:
        info = await run_in_threadpool(state.keys.authenticate, key.strip())
        info.require("read")
    except (AuthError, ForbiddenError) as exc:
        context = {"next": _local_path(next), "failed": True, "message": str(exc)}
        return _render(request, None, "login.html", context, 401)
    answer = RedirectResponse(_local_path(next), status_code=303)
    answer.set_cookie(
        COOKIE, key.strip(), httponly=True, samesite="strict", path="/ui", max_age=8 * 3600
    )
    return answer


@router.post("/logout")
async def logout() -> Response:
    answer = RedirectResponse("/ui/login", status_code=303)
    answer.delete_cookie(COOKIE, path="/ui")
    return answer


def _local_path(target: str) -> str:
    """``target`` if it is a path under ``/ui`` (never an open redirect)."""
    return (
        target if target.startswith("/ui") and "//" not in target and "\\" not in target else "/ui"
    )


# -- pages -----------------------------------------------------------------------------------


@router.get("")
async def home(request: Request) -> Response:
    """The tenant's cubes: items by state and by tier."""

    def build(who: Caller) -> dict[str, Any]:
        cubes = [
            _cube_figures(who, name, inspect_store(who.state.core, who.memos.stored(name)))
            for name in who.memos.cubes()
        ]
        return {"cubes": cubes, "states": list(State)}

    return await _page(request, "home.html", build)


@router.get("/cubes/{cube:path}")
async def cube_page(request: Request, cube: str, q: str = "", offset: int = 0) -> Response:
    """One cube: tiers, retention, search with score parts, and its items."""

    def build(who: Caller) -> dict[str, Any]:
        core = who.state.core
        stored = who.memos.stored(cube)
        found = inspect_store(core, stored)
        tiers = item_tiers(core, stored)
        policy = core.config.retention
        now = core.clock.now()
        items = who.memos.list(cube=cube, limit=PAGE, offset=max(0, offset))
        hits = who.memos.search(q, cube=cube, k=10) if q.strip() else []
        recalled = sorted(items, key=lambda r: (-r.access_count, r.created_at))[:CURVE_ITEMS]
        return {
            "cube": cube,
            "figures": _cube_figures(who, cube, found),
            "states": list(State),
            "histogram": _histogram(found.retention_bins),
            "curves": _curves(recalled, policy, now),
            "query": q,
            "hits": [(hit, _row(hit.item, tiers, policy, now)) for hit in hits],
            "items": [_row(r, tiers, policy, now) for r in items],
            "offset": max(0, offset),
            "page": PAGE,
            "snapshots": who.memos.snapshots(cube),
            "adapters": who.memos.adapters(cube),
        }

    return await _page(request, "cube.html", build)


@router.get("/items/{item_id}")
async def item_page(request: Request, item_id: str) -> Response:
    """One item: its fields, tiers, retention curve and history."""

    def build(who: Caller) -> dict[str, Any]:
        core = who.state.core
        record = who.memos.get(item_id)
        policy = core.config.retention
        now = core.clock.now()
        tiers = item_tiers(core, who.memos.stored(record.cube))
        return {
            "item": _row(record, tiers, policy, now),
            "record": record,
            "history": who.memos.history(item_id),
            "curves": _curves([record], policy, now),
        }

    return await _page(request, "item.html", build)


@router.post("/items/{item_id}/{action}")
async def item_action(request: Request, item_id: str, action: str) -> Response:
    """Delete or restore an item (keys that can write; forms of this origin only)."""
    if action not in ("delete", "restore"):
        return Response(status_code=404)
    if not _same_origin(request):
        return Response("cross-origin form refused", status_code=403)

    def change(who: Caller) -> dict[str, Any]:
        if action == "delete":
            who.memos.delete(item_id, reason="deleted in /ui")
        else:
            who.memos.restore(item_id)
        return {}

    done = await _run(request, change, scope="write", lane=WRITE)
    if isinstance(done, Response):
        return done
    return RedirectResponse(f"/ui/items/{quote(item_id)}", status_code=303)


@router.get("/jobs")
async def jobs_page(request: Request) -> Response:
    """The tenant's jobs, snapshots and adapters."""

    def build(who: Caller) -> dict[str, Any]:
        return {
            "jobs": who.memos.jobs(limit=100),
            "snapshots": who.memos.snapshots(),
            "adapters": who.memos.adapters(),
        }

    return await _page(request, "jobs.html", build)


# -- what the templates draw --------------------------------------------------------------


@dataclass(frozen=True)
class ItemRow:
    """An item as a page lists it."""

    record: MemoryRecord
    retention: float
    tiers: list[str]


def _row(
    record: MemoryRecord, tiers: dict[str, list[str]], policy: RetentionPolicy, now: datetime
) -> ItemRow:
    return ItemRow(record, policy.retention(record, now), ["plaintext", *tiers.get(record.id, [])])


@dataclass(frozen=True)
class TierView:
    """One tier's share of a cube, as drawn."""

    tier: str
    items: int
    artifacts: int
    share: float  # of the cube's items
    bytes: int
    detail: str


@dataclass(frozen=True)
class CubeView:
    """A cube's figures, as drawn."""

    name: str
    items: int
    by_state: dict[str, int]
    tiers: list[TierView]
    pinned: int
    stability_days: float


def _cube_figures(who: Caller, name: str, found: Inspection) -> CubeView:
    total = max(1, found.items)
    tiers = [
        TierView(t.tier, t.items, t.artifacts, t.items / total, t.bytes, t.detail)
        for t in found.tiers
    ]
    return CubeView(
        name, found.items, found.by_state, tiers, found.pinned, found.mean_stability_days
    )


def _histogram(bins: Sequence[int]) -> list[dict[str, Any]]:
    top = max(bins) or 1
    return [
        {"label": f"{n / 10:.1f}-{(n + 1) / 10:.1f}", "count": count, "share": count / top}
        for n, count in enumerate(bins)
    ]


def _curves(
    records: Sequence[MemoryRecord], policy: RetentionPolicy, now: datetime
) -> list[dict[str, Any]]:
    """Each item's retention over the next :data:`CURVE_DAYS` days as an SVG
    polyline in a 600 by 200 box (if it is not recalled meanwhile)."""
    steps = 60
    curves = []
    for record in records:
        points = []
        for step in range(steps + 1):
            day = CURVE_DAYS * step / steps
            r = policy.retention(record, now + timedelta(days=day))
            points.append(f"{600 * step / steps:.1f},{200 - 200 * _finite(r):.1f}")
        curves.append({"record": record, "points": " ".join(points)})
    return curves


def _finite(value: float) -> float:
    return min(1.0, max(0.0, value)) if math.isfinite(value) else 0.0
