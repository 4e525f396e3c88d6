"""Request metrics in Prometheus text format (no dependency).

:class:`MetricsMiddleware` wraps the whole app (so it also counts the 413s
FastAPI answers before routing) and labels requests by route template, never
by raw path, to keep the label set small. Counts are per worker process.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _esc(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


#: Where a request's scope state names the tenant its key belongs to.
TENANT_KEY = "memos_tenant"


class Metrics:
    """Thread-safe request counters and latency sums (sync routes run in threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, str, str], int] = defaultdict(int)
        self.seconds: dict[tuple[str, str, str], float] = defaultdict(float)
        self.count: dict[tuple[str, str, str], int] = defaultdict(int)

    def observe(self, tenant: str, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(tenant, method, route, str(status))] += 1
            self.seconds[(tenant, method, route)] += seconds
            self.count[(tenant, method, route)] += 1

    def render(self, tenant: str, items: Iterable[tuple[str, str, int]] = ()) -> str:
        """Prometheus text of one tenant: its requests, latency, and ``items`` as
        (cube, state, count)."""
        with self._lock:
            requests = {k[1:]: n for k, n in self.requests.items() if k[0] == tenant}
            seconds = {k[1:]: n for k, n in self.seconds.items() if k[0] == tenant}
            count = {k[1:]: n for k, n in self.count.items() if k[0] == tenant}
        lines = [
            "# HELP memos_http_requests_total HTTP requests handled.",
            "# TYPE memos_http_requests_total counter",
        ]
        for (method, route, status), n in sorted(requests.items()):
            labels = f'method="{method}",route="{_esc(route)}",status="{status}"'
            lines.append(f"memos_http_requests_total{{{labels}}} {n}")
        lines += [
            "# HELP memos_http_request_duration_seconds Time to answer a request.",
            "# TYPE memos_http_request_duration_seconds summary",
        ]
        for (method, route), total in sorted(seconds.items()):
            labels = f'method="{method}",route="{_esc(route)}"'
            lines.append(f"memos_http_request_duration_seconds_sum{{{labels}}} {total:.6f}")
            lines.append(
                f"memos_http_request_duration_seconds_count{{{labels}}} {count[(method, route)]}"
            )
        lines += ["# HELP memos_items Memory items by cube and state.", "# TYPE memos_items gauge"]
        for cube, state, n in items:
            lines.append(f'memos_items{{cube="{_esc(cube)}",state="{_esc(state)}"}} {n}')
        return "\n".join(lines) + "\n"


class MetricsMiddleware:
    """Times every HTTP request and counts it by method, route template and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status, started = 500, time.perf_counter()

        async def tracked(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or (
                scope["path"] if "endpoint" in scope else "unmatched"
            )
            tenant = str(scope.get("state", {}).get(TENANT_KEY, ""))
            elapsed = time.perf_counter() - started
            self.metrics.observe(tenant, scope["method"], label, status, elapsed)
