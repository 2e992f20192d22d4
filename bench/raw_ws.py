"""Baseline for the fan-out bench: a bare Starlette websocket broadcast.

Each event is serialised once and sent to every connected socket, in frames shaped
like agentplane's `next` messages, at the scripted model's pace.
"""

import asyncio
import json
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

sockets: set[WebSocket] = set()
background: set[asyncio.Task[None]] = set()


async def subscriber(websocket: WebSocket) -> None:
    await websocket.accept()
    sockets.add(websocket)
    try:
        while True:
            await websocket.receive_text()
    except WebSocketDisconnect:
        sockets.discard(websocket)


async def broadcast(events: int) -> None:
    for seq in range(3, 3 + events):
        step = {
            "seq": seq,
            "kind": "TOOL_CALL",
            "createdAt": datetime.now(UTC).isoformat(),
            "payload": {
                "tool": "calculator",
                "callId": f"call_{seq}",
                "arguments": {"expression": "6*7"},
                "output": "42",
            },
        }
        frame = json.dumps({"id": "1", "type": "next", "payload": {"data": {"taskEvents": step}}})
        for websocket in list(sockets):
            await websocket.send_text(frame)
        await asyncio.sleep(0.15)
    done = json.dumps({"id": "1", "type": "complete"})
    for websocket in list(sockets):
        await websocket.send_text(done)


async def start(request: Request) -> JSONResponse:
    body = await request.json()
    task = asyncio.create_task(broadcast(int(body["events"])))
    background.add(task)
    task.add_done_callback(background.discard)
    return JSONResponse({"started": True})


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[
        WebSocketRoute("/ws", subscriber),
        Route("/start", start, methods=["POST"]),
        Route("/readyz", healthz),
    ]
)
