"""Checks made on every HTTP request before routing.

- A ``Content-Length`` over the body limit is answered at once with the typed
  JSON 413 every other error has (Starlette's own limiter answers it in plain
  text; a chunked body over the limit still reaches that limiter, whose 413
  the error handlers turn into JSON).
- With auth off (``--no-auth``, loopback only), a request whose ``Host`` or
  ``Origin`` is not a loopback name is refused with 403: a web page in the
  user's browser cannot reach the unauthenticated store by DNS rebinding or a
  cross-site request (the MCP endpoint has the same guard).
"""

from __future__ import annotations

import ipaddress
import json
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from memos.service.http_errors import body

_LOOPBACK_NAMES = {"localhost", "testserver"}


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a host name or address, without port) names this machine."""
    name = host.strip("[]").lower()
    if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _host_of(value: str) -> str:
    """The host of a ``Host`` header (``name:port``, ``[v6]:port``) or an origin URL."""
    if "://" in value:
        return urlsplit(value).hostname or ""
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class RequestGuard:
    """ASGI middleware applying the checks above, outermost."""

    def __init__(self, app: ASGIApp, *, max_body_size: int, auth: bool) -> None:
        self.app = app
        self.max_body_size = max_body_size
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body_size:
            limit = f"the request body is over the limit of {self.max_body_size} bytes"
            await _answer(send, 413, body("ContentTooLarge", limit))
            return
        if not self.auth:
            for name in ("host", "origin"):
                value = headers.get(name)
                if value and value != "null" and not is_loopback(_host_of(value)):
                    refused = f"{name} {value[:100]!r} is not loopback: refused while auth is off"
                    await _answer(send, 403, body("ForbiddenError", refused))
                    return
        await self.app(scope, receive, send)


async def _answer(send: Send, status: int, content: dict[str, object]) -> None:
    payload = json.dumps(content).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
