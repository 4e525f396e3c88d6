"""Routes as plain functions of memory, run off the event loop and answered fast.

:func:`offload` turns a route written as a plain (synchronous) function into
the asynchronous endpoint FastAPI awaits: the function runs on the worker's
:class:`~memos.service.executor.WorkQueue` (in the given lane), and its result
is serialized with a pydantic ``TypeAdapter`` of its return annotation
straight to JSON bytes. FastAPI's own path for a ``response_model`` first
validates the returned records into models and then serializes them, which
cost about 0.9 ms for ten search hits where ``dump_json`` takes 0.02 ms.
The route keeps its ``response_model`` for the OpenAPI schema.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any

from pydantic import TypeAdapter
from starlette.responses import Response

from memos.service.executor import READ

Route = Callable[..., Any]


def offload(
    lane: str = READ,
    status: int = 200,
    queue: str = "work",
    embeds: Callable[[dict[str, Any]], str | None] | None = None,
) -> Callable[[Route], Route]:
    """Run the decorated route on the caller's work queue (``queue``: ``work`` for
    memory, ``model`` for the language model) in ``lane``; answer ``status``.
    ``embeds(arguments)`` names the text the route will embed (its query), so
    queued searches are embedded together (see :mod:`memos.service.executor`)."""

    def decorate(route: Route) -> Route:
        kind = typing.get_type_hints(route).get("return")
        adapter = _adapter(kind) if kind not in (None, type(None)) else None
        signature = inspect.signature(route, eval_str=True)

        @functools.wraps(route)
        async def endpoint(**kwargs: Any) -> Response:
            work = getattr(kwargs["who"].state, queue)
            text = embeds(kwargs) if embeds is not None else None
            result = await work.run(functools.partial(route, **kwargs), lane, text)
            if adapter is None:
                return Response(status_code=status)
            body = adapter.dump_json(result)
            return Response(body, status_code=status, media_type="application/json")

        endpoint.__signature__ = signature  # type: ignore[attr-defined]
        return endpoint

    return decorate


@functools.cache
def _adapter(kind: Any) -> TypeAdapter[Any]:
    return TypeAdapter(kind)


def respond(value: Any, kind: Any, status: int = 200) -> Response:
    """``value`` (of type ``kind``) as a JSON response, serialized by pydantic."""
    body = _adapter(kind).dump_json(value)
    return Response(body, status_code=status, media_type="application/json")
