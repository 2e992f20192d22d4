"""Request body limit: an over-long body is refused with 413 before anyone reads it."""

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentplane.core.observability import error_extensions

MAX_BODY_BYTES = 1024 * 1024  # 1 MiB: a task's query is at most 100,000 characters


class BodySizeLimit:
    """Checks `Content-Length` up front, and counts the bytes of a chunked body as it
    arrives (buffered up to the limit, then replayed to the application)."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit() or int(length) > self.max_bytes:
                return await self._refuse(send)
            return await self.app(scope, receive, send)
        if b"chunked" not in headers.get(b"transfer-encoding", b""):
            return await self.app(scope, receive, send)
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                return await self._refuse(send)
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        return await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        body = orjson.dumps(
            {
                "errors": [
                    {
                        "message": f"Request body exceeds {self.max_bytes} bytes",
                        "extensions": {
                            "code": "PAYLOAD_TOO_LARGE",
                            "maxBytes": self.max_bytes,
                            **error_extensions(),
                        },
                    }
                ]
            }
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
