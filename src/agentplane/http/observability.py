"""Per-request observability: a request id, latency and count by route, one access log line."""

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentplane.core import request_context
from agentplane.core.observability import HTTP_LATENCY, HTTP_REQUESTS, WEBSOCKETS_ACTIVE


class RequestObservability:
    """Request id, latency and count by route template, one access log line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.access = logging.getLogger("agentplane.access")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = request_context.new_request_id(incoming)
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

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            HTTP_REQUESTS.labels(template, method, str(status)).inc()
            HTTP_LATENCY.labels(template, method).observe(elapsed)
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
