"""Per-request observability: a request id, latency and count by route, one access log line."""

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentplane.core import request_context
from agentplane.core.observability import HTTP_LATENCY, HTTP_REQUESTS, WEBSOCKETS_ACTIVE

# Labelled metric children by (route, method[, status]): `labels()` takes a lock and
# builds its key on every call, which a request need not pay once the series exists.
_counters: dict[tuple[str, str, int], Any] = {}
_timers: dict[tuple[str, str], Any] = {}


def _record(template: str, method: str, status: int, elapsed: float) -> None:
    counter = _counters.get((template, method, status))
    if counter is None:
        counter = _counters[(template, method, status)] = HTTP_REQUESTS.labels(
            template, method, str(status)
        )
    timer = _timers.get((template, method))
    if timer is None:
        timer = _timers[(template, method)] = HTTP_LATENCY.labels(template, method)
    counter.inc()
    timer.observe(elapsed)


def _incoming_id(scope: Scope) -> str:
    for key, value in scope["headers"]:
        if key == b"x-request-id":
            return str(value.decode("latin-1"))
    return ""


class RequestObservability:
    """Request id, latency and count by route template, one access log line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.access = logging.getLogger("agentplane.access")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        request_id = request_context.new_request_id(_incoming_id(scope))
        token = request_context.set_request_id(request_id)
        if scope["type"] == "websocket":
            WEBSOCKETS_ACTIVE.inc()
            try:
                return await self.app(scope, receive, send)
            finally:
                WEBSOCKETS_ACTIVE.dec()
                request_context.reset_request_id(token)
        status = 500
        start = time.perf_counter()
        id_header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), id_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            _record(template, method, status, elapsed)
            if self.access.isEnabledFor(logging.INFO):
                self.access.info(
                    "request",
                    extra={
                        "method": method,
                        "path": scope["path"],
                        "route": template,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                    },
                )
            request_context.reset_request_id(token)
