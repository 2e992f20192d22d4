"""The GraphQL endpoint (HTTP and both websocket protocols) with bearer-token auth."""

from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL

from agentplane import live_sockets
from agentplane.auth import authenticate, authenticate_request, bearer_from_header
from agentplane.config import Settings
from agentplane.csrf import graphql_needs_csrf
from agentplane.errors import DomainError
from agentplane.schema import schema
from agentplane.schema.context import Context

# Our GraphiQL page: the stock one does not send the Headers tab over websockets.
GRAPHIQL_HTML = (Path(__file__).parent / "static" / "graphiql.html").read_text()


class GraphQLApp(GraphQL[Context, None]):
    def __init__(self, settings: Settings) -> None:
        super().__init__(
            schema,
            graphql_ide=None if settings.production else "graphiql",
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL),
            keep_alive=True,
            keep_alive_interval=15,
        )
        self.settings = settings

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        return HTMLResponse(GRAPHIQL_HTML)

    async def _actor_from(self, header: str | None, context: Context) -> None:
        try:
            context.set_actor(
                await authenticate(bearer_from_header(header), self.settings.admin_token)
            )
        except DomainError as exc:
            context.auth_error = exc

    async def get_context(self, request: Request | WebSocket, response: Any = None) -> Context:
        context = Context(request=request, response=response)
        if isinstance(request, Request):  # HTTP: a bearer token, or a session cookie + CSRF
            try:
                context.set_actor(
                    await authenticate_request(
                        request.method,
                        request.headers,
                        request.cookies,
                        self.settings.admin_token,
                        csrf_exempt=not await graphql_needs_csrf(request),
                    )
                )
            except DomainError as exc:
                context.auth_error = exc
        else:
            await self._actor_from(request.headers.get("authorization"), context)
        return context

    async def on_ws_connect(self, context: Context) -> dict[str, object] | None:
        """Websocket auth: `connection_init` payload first, else the upgrade request's header."""
        params = context.connection_params or {}
        header = params.get("Authorization") or params.get("authorization")
        if isinstance(header, str):
            await self._actor_from(header, context)
        if context.auth_error is not None:
            raise ConnectionRejectionError({"message": context.auth_error.message})
        live_sockets.register(context.actor, context.request)  # closed when revoked
        return None
