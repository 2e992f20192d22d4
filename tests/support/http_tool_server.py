"""A real local HTTP server that agents call as HTTP tools (uvicorn in a thread).

- `GET /weather?city=…`: `{"city": …, "forecast": "sunny"}`;
- `POST /echo`: the JSON body back, with the `X-Api-Key` it was sent;
- `GET /slow`: answers after 5 s; `GET /big`: 20,000 characters; `GET /fail`: HTTP 500.
Every request is recorded (path, query, headers, body) for the tests to inspect.
"""

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.support.openai_server import _wait_until_accepting

BIG = "x" * 20_000


@dataclass
class Recorded:
    requests: list[dict[str, Any]] = field(default_factory=list)


def create_app(recorded: Recorded) -> Starlette:
    async def note(request: Request) -> None:
        body = await request.body()
        recorded.requests.append(
            {
                "method": request.method,
                "path": request.url.path,
                "query": dict(request.query_params),
                "headers": dict(request.headers),
                "body": json.loads(body) if body else None,
            }
        )

    async def weather(request: Request) -> Response:
        await note(request)
        return JSONResponse({"city": request.query_params.get("city"), "forecast": "sunny"})

    async def echo(request: Request) -> Response:
        await note(request)
        body = await request.json()
        return JSONResponse({"got": body, "key": request.headers.get("x-api-key")})

    async def slow(request: Request) -> Response:
        await note(request)
        await asyncio.sleep(5)
        return PlainTextResponse("late")

    async def big(request: Request) -> Response:
        await note(request)
        return PlainTextResponse(BIG)

    async def fail(request: Request) -> Response:
        await note(request)
        return PlainTextResponse("upstream exploded", status_code=500)

    return Starlette(
        routes=[
            Route("/weather", weather),
            Route("/echo", echo, methods=["POST"]),
            Route("/slow", slow),
            Route("/big", big),
            Route("/fail", fail),
        ]
    )


@contextmanager
def serve_tools() -> Iterator[tuple[str, Recorded]]:
    """Run the server on a free 127.0.0.1 port; yield its base URL and the recorder."""
    recorded = Recorded()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(recorded), log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        _wait_until_accepting(port, thread)
        yield f"http://127.0.0.1:{port}", recorded
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
