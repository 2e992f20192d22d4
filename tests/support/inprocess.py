"""Uvicorn serving the app inside the test's own event loop, over real sockets: for
tests that must look at the server's state (caches, feeds) while clients talk to it."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn

from agentplane.core.config import Settings
from agentplane.http.app import create_app
from tests.support.database import truncate_all
from tests.support.server import free_port


@asynccontextmanager
async def serve_in_process(settings: Settings) -> AsyncIterator[str]:
    """Serve on a free port (no in-process worker); yields the GraphQL websocket URL."""
    await truncate_all(settings.database_url)
    port = free_port()
    app = create_app(settings, run_worker=False)
    config = uvicorn.Config(
        app, port=port, ws="websockets-sansio", ws_per_message_deflate=False, log_level="warning"
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        assert not serving.done(), "uvicorn did not start"
        await asyncio.sleep(0.01)
    try:
        yield f"ws://127.0.0.1:{port}/graphql"
    finally:
        server.should_exit = True
        await serving
