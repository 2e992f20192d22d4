"""The GraphQL endpoint (HTTP, SSE and both websocket protocols) with bearer-token auth."""

from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions import (
    GRAPHQL_SSE_PROTOCOL,
    GRAPHQL_TRANSPORT_WS_PROTOCOL,
    GRAPHQL_WS_PROTOCOL,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.types import ExecutionResult

from agentplane.core.config import Settings
from agentplane.core.errors import DomainError
from agentplane.core.observability import error_extensions
from agentplane.http.accept import GRAPHQL_RESPONSE_JSON, wants_graphql_response_json
from agentplane.http.csrf import graphql_needs_csrf
from agentplane.http.fast_path import FAST_PATH_AUTH, FastPath
from agentplane.http.middleware import Buckets, current_bucket
from agentplane.http.sse import EVENT_STREAM, LiveEventStream
from agentplane.http.ws_limits import SocketLimits, SocketRefused, socket_bucket, take_operation
from agentplane.resolvers.auth import (
    CSRF_HEADER,
    authenticate,
    authenticate_request,
    bearer_from_header,
    credential_key,
)
from agentplane.schema import build_schema, live
from agentplane.schema.context import Context
from agentplane.subscriptions import live_sockets
from agentplane.subscriptions.live_sockets import ConnectionSlots

# Our GraphiQL page: the stock one does not send the Headers tab over websockets.
GRAPHIQL_HTML = (Path(__file__).parents[1] / "static" / "graphiql.html").read_text()
WS_CONNECTION_INIT_TIMEOUT = timedelta(seconds=5)  # else close 4408
MAX_SUBSCRIPTIONS_PER_CONNECTION = 20


def _text_sender(adapter: Any) -> Callable[[str], Coroutine[Any, Any, None]]:
    async def send_text(text: str) -> None:
        try:
            await adapter.ws.send_text(text)
        except WebSocketDisconnect as exc:  # as the protocol handlers' own sends report it
            raise WebSocketDisconnected from exc

    return send_text


def _rate_limited(message: str) -> dict[str, Any]:
    return {"message": message, "extensions": {"code": "RATE_LIMITED", **error_extensions()}}


# Each operation runs in its own task: bind its socket and frame there, so that
# `taskEvents` can send shared payloads itself (schema/live.py), and the socket's
# rate-limit bucket, so that the operation's query cost is charged to it.
class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    async def handle_connection_init(self, message: Any) -> None:
        try:
            await super().handle_connection_init(message)
        except SocketRefused as refused:
            await self.websocket.close(code=refused.code, reason=refused.reason)

    async def handle_subscribe(self, message: Any) -> None:
        cap = self.max_subscriptions_per_connection
        if (
            self.connection_acknowledged
            and message["id"] not in self.operations
            and (cap is None or len(self.operations) < cap)
        ):
            refusal = await take_operation(self.context.request)
            if refusal is not None:
                error = {"id": message["id"], "type": "error", "payload": [_rate_limited(refusal)]}
                await self.send_message(error)  # type: ignore[arg-type]
                return
        await super().handle_subscribe(message)

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        live.bind_socket(_text_sender(self.websocket), {"id": operation.id, "type": "next"})
        current_bucket.set(socket_bucket(self.context.request))
        await super().run_operation(operation)


class LegacyWSHandler(BaseGraphQLWSHandler[Context, None]):
    async def handle_connection_init(self, message: Any) -> None:
        try:
            await super().handle_connection_init(message)
        except SocketRefused as refused:
            payload = {"message": refused.reason, "code": refused.code}
            await self.send_message({"type": "connection_error", "payload": payload})
            await self.websocket.close(code=refused.code, reason=refused.reason)

    async def handle_start(self, message: Any) -> None:
        cap = self.max_subscriptions_per_connection
        if self.connection_acknowledged and (cap is None or len(self.tasks) < cap):
            refusal = await take_operation(self.context.request)
            if refusal is not None:
                error = {"type": "error", "id": message["id"], "payload": _rate_limited(refusal)}
                await self.send_message(error)  # type: ignore[arg-type]
                return
        await super().handle_start(message)

    async def handle_async_results(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        live.bind_socket(_text_sender(self.websocket), {"type": "data", "id": operation_id})
        current_bucket.set(socket_bucket(self.context.request))
        await super().handle_async_results(operation_id, query, operation_name, variables)


def _unguarded_multipart(request: Request) -> bool:
    content_type = request.headers.get("content-type", "")
    return (
        request.method == "POST"
        and content_type.startswith("multipart/")
        and not request.headers.get("authorization")
        and not request.headers.get(CSRF_HEADER)
    )


class GraphQLApp(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler

    def __init__(self, settings: Settings, buckets: Buckets, slots: ConnectionSlots) -> None:
        # Batches stay off (the schema has no batching config). Multipart (the GraphQL
        # multipart request spec, for `Upload`) is a shape a cross-site form can send, so
        # it is read only from a bearer caller or one echoing its session's CSRF token
        # (`__call__` refuses the rest; `graphql_needs_csrf` checks the token's value).
        # Mutations are refused over GET.
        super().__init__(
            build_schema(settings.production),
            graphql_ide=None if settings.production else "graphiql",
            # GraphQL over SSE too (`Accept: text/event-stream`; http/sse.py)
            subscription_protocols=(
                GRAPHQL_TRANSPORT_WS_PROTOCOL,
                GRAPHQL_WS_PROTOCOL,
                GRAPHQL_SSE_PROTOCOL,
            ),
            keep_alive=True,
            keep_alive_interval=15,
            connection_init_wait_timeout=WS_CONNECTION_INIT_TIMEOUT,
            max_subscriptions_per_connection=MAX_SUBSCRIPTIONS_PER_CONNECTION,
            multipart_uploads_enabled=True,
        )
        self.settings = settings
        self.socket_limits = SocketLimits(buckets, slots)
        # None: every request takes Strawberry's view (tests compare both paths)
        self.fast_path: FastPath | None = FastPath(self.schema, settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            try:
                return await super().__call__(scope, receive, send)
            finally:
                self.socket_limits.release(scope)
        request = Request(scope=scope, receive=receive)
        # GraphQL over HTTP: `application/graphql-response+json` when the client asks for
        # it; its status codes tell request errors (4xx) from execution errors (200).
        graphql_response = wants_graphql_response_json(request.headers.get("accept"))
        request.state.graphql_response = graphql_response
        request.state.request_error = False
        try:
            if _unguarded_multipart(request):
                raise HTTPException(
                    403,
                    "Multipart requests need `Authorization: Bearer …` or the session's "
                    "X-CSRF-Token header",
                )
            body = await self.fast_path.answer(request) if self.fast_path else None
            if body is not None:
                response = Response(orjson.dumps(body), media_type="application/json")
            else:
                response = await self.run(request)
        except HTTPException as exc:  # refused before execution: a GraphQL error body, not text
            response = JSONResponse(
                {
                    "errors": [
                        {
                            "message": exc.reason,
                            "extensions": {"code": "BAD_REQUEST", **error_extensions()},
                        }
                    ]
                },
                status_code=exc.status_code,
            )
        if graphql_response and response.media_type == "application/json":
            response.headers["content-type"] = f"{GRAPHQL_RESPONSE_JSON}; charset=utf-8"
            if request.state.request_error and response.status_code == 200:
                response.status_code = 400
        await response(scope, receive, send)
        return None

    async def process_result(self, request: Request, result: ExecutionResult) -> Any:
        body = await super().process_result(request, result)
        # A request error (parse, validation, variable coercion, a refused cost) is an
        # error with no path and no data: execution never started, so the result has no
        # `data` entry (GraphQL spec, "Response"). Under graphql-response+json it answers
        # 400; under application/json it stays 200 (legacy).
        if (
            result.data is None
            and result.errors
            and all(error.path is None for error in result.errors)
        ):
            request.state.request_error = request.state.graphql_response
            body.pop("data", None)
        return body

    async def create_streaming_response(
        self,
        request: Request | WebSocket,
        stream: Callable[[], AsyncIterator[str]],
        sub_response: Response,
        headers: Mapping[str, str],
    ) -> Response:
        if headers.get("Content-Type") != EVENT_STREAM:
            return await super().create_streaming_response(request, stream, sub_response, headers)
        # A stream holds a connection as long as a websocket does: the same per-credential cap.
        slots = self.socket_limits.slots
        slot = credential_key(request.scope)
        if not slots.hold(slot):
            limit = slots.limit
            message = f"Too many open streams and websockets for this credential (at most {limit})"
            extensions = {"code": "RATE_LIMITED", **error_extensions()}
            return JSONResponse(
                {"errors": [{"message": message, "extensions": extensions}]}, status_code=429
            )
        return LiveEventStream(
            stream(),
            actor=request.state.graphql_context._actor,
            headers={**sub_response.headers, **headers},
            status_code=sub_response.status_code or 200,
            on_end=lambda: slots.drop(slot),
        )

    def encode_json(self, data: object) -> str:
        # A str, not bytes: strawberry sends bytes as binary websocket frames, which
        # browser graphql-ws clients cannot parse.
        try:
            return orjson.dumps(data).decode()
        except TypeError:  # e.g. an integer beyond 64 bits in a JSON payload
            return str(super().encode_json(data))

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
        checked = getattr(request.state, FAST_PATH_AUTH, None)
        if checked is not None:  # the fast path authenticated this request, then fell through
            actor, error = checked
            if error is not None:
                context.auth_error = error
            else:
                context.set_actor(actor)
        elif isinstance(request, Request):  # HTTP: a bearer token, or a session cookie + CSRF
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
            request.state.graphql_context = context  # an SSE response registers its actor
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
        credential = header if isinstance(header, str) else None
        await self.socket_limits.admit(context.request, credential)  # or SocketRefused
        live_sockets.register(context.actor, context.request)  # closed when revoked
        return None
