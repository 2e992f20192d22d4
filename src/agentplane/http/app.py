"""The ASGI application: routes and the lifespan that owns every shared resource."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Mount, Route, WebSocketRoute

from agentplane.core import db, secretbox, throttle
from agentplane.core.config import Settings
from agentplane.http.graphql_app import GraphQLApp
from agentplane.http.http_limits import BodySizeLimit
from agentplane.http.middleware import Buckets, RateLimitMiddleware, charge_query
from agentplane.http.observability import RequestObservability
from agentplane.http.ui import DashboardFiles
from agentplane.mcp.server import PATH as MCP_PATH
from agentplane.mcp.server import McpEndpoint
from agentplane.resolvers import indexing
from agentplane.resolvers.bootstrap import bootstrap_admin_token
from agentplane.resolvers.health import readiness
from agentplane.rest_compat import exception_handlers as rest_exception_handlers
from agentplane.rest_compat import routes as rest_routes
from agentplane.runtime import maintenance
from agentplane.runtime.worker import Worker
from agentplane.schema import cost
from agentplane.subscriptions.broker import make_broker, set_broker
from agentplane.subscriptions.live_sockets import ConnectionSlots

log = logging.getLogger("agentplane")


async def readyz(request: Request) -> JSONResponse:
    ready, checks = await readiness()
    body = {"status": "ready" if ready else "not ready", "checks": checks}
    return JSONResponse(body, status_code=200 if ready else 503)


def create_app(
    settings: Settings | None = None, *, run_worker: bool = True, bootstrap: bool = False
) -> Starlette:
    settings = settings or Settings.from_env()
    mcp = McpEndpoint(settings)  # its MCP session manager runs inside this app's lifespan

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if settings.is_sqlite:
            await db.migrate(settings.database_url)  # embedded default: always up to date
        await db.init(settings.database_url)
        secretbox.configure(settings.secret_key)
        housekeeping = asyncio.create_task(maintenance.run_forever(settings))
        broker = make_broker(settings.redis_url)
        await broker.start()
        set_broker(broker)
        # Resumes documents a dead process left indexing (first round at startup).
        index_watcher = asyncio.create_task(indexing.watch_forever())
        if bootstrap and not settings.admin_token:
            plaintext = await bootstrap_admin_token()
            if plaintext:
                print(
                    "\n  First start: created a platform-admin token (shown only now):\n"
                    f"\n    {plaintext}\n"
                    "\n  Paste it into the dashboard at /ui (or GraphiQL's headers at /graphql).\n",
                    flush=True,
                )
        worker = Worker(settings) if run_worker else None
        if worker is not None:
            await worker.start()
        await mcp.start()
        try:
            yield
        finally:
            await mcp.stop()
            if worker is not None:
                await worker.stop()
            housekeeping.cancel()
            index_watcher.cancel()
            await indexing.stop()
            await broker.close()
            set_broker(None)
            await db.close()

    buckets = Buckets(settings.rate_limit_per_min, settings.redis_url)
    # Long-lived connections per credential: websockets, GraphQL and REST event streams.
    slots = ConnectionSlots()
    graphql = GraphQLApp(settings, buckets, slots)
    routes = [
        Route("/readyz", readyz),
        Route("/", lambda request: RedirectResponse("/ui/"), methods=["GET"]),
        Mount("/ui", app=DashboardFiles(), name="ui"),  # the operator dashboard
        Route("/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql),
        Route(MCP_PATH, mcp, methods=["GET", "POST", "DELETE"]),
        *rest_routes(),  # including /healthz and /metrics (OpsClaw's)
    ]
    middleware = [
        Middleware(RequestObservability),
        Middleware(BodySizeLimit),
        Middleware(RateLimitMiddleware, buckets),
    ]
    # Unknown paths/methods under a REST dialect's prefix answer in that dialect's envelope.
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=middleware,
        exception_handlers=rest_exception_handlers,
    )
    app.state.settings = settings
    app.state.connection_slots = slots  # REST event streams take theirs (rest_compat)
    throttle.configure(settings.redis_url)
    cost.set_charger(charge_query)  # a GraphQL query's cost comes out of the caller's bucket
    return app
