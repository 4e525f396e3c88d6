"""Typed errors as HTTP answers: ``{"error", "message", "detail"}``, never a stack trace.

The status of a library error is read from its class (the first match in
:data:`STATUS` along its MRO); anything unexpected is a 500 that names no
internals (the traceback goes to the server log only).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from memos import errors

log = logging.getLogger("memos.service")

STATUS: dict[type[Exception], int] = {
    errors.AuthError: 401,
    errors.ForbiddenError: 403,
    errors.NotFoundError: 404,
    errors.DuplicateError: 409,
    errors.SchedulerBusyError: 409,
    errors.InvalidInputError: 400,
    errors.SnapshotError: 409,
}

#: What error responses each route documents (the OpenAPI schema stays exact).
DOCUMENTED = (400, 401, 403, 404, 409, 413)
_NAMES = {400: "BadRequest", 404: "NotFound", 405: "MethodNotAllowed", 413: "ContentTooLarge"}


def status_of(exc: Exception) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def body(error: str, message: str, detail: Any = None) -> dict[str, Any]:
    return {"error": error, "message": message, "detail": detail}


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the typed JSON shape."""

    @app.exception_handler(errors.MemosError)
    async def _memos_error(request: Request, exc: errors.MemosError) -> JSONResponse:
        status = status_of(exc)
        if status == 500:
            log.error("%s on %s: %s", type(exc).__name__, request.url.path, exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse(body(type(exc).__name__, str(exc)), status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
            for e in exc.errors()
        ]
        return JSONResponse(body("ValidationError", "the request is invalid", detail), 422)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        name = _NAMES.get(exc.status_code, "HTTPError")
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:  # every method of the path, not only the first route's
            methods = {
                method
                for route in request.app.routes
                if isinstance(route, APIRoute) and route.path_regex.match(request.url.path)
                for method in route.methods or ()
            }
            headers = {"Allow": ", ".join(sorted(methods))}
        return JSONResponse(body(name, str(exc.detail)), exc.status_code, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return JSONResponse(body("InternalError", "internal error"), 500)
