"""Plumbing every REST dialect shares: who is calling, JSON bodies, error mapping."""

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from agentplane.auth import Actor, authenticate_request
from agentplane.config import Settings
from agentplane.errors import DomainError, ValidationFailed

# HTTP status of each domain error code, shared by the dialects.
STATUS = {
    "UNAUTHENTICATED": 401,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "VALIDATION": 400,
    "CONFLICT": 409,
    "TENANT_SUSPENDED": 403,
    "BUDGET_EXCEEDED": 402,
    "RATE_LIMITED": 429,
}

Renderer = Callable[[DomainError, int], Response]
Handler = Callable[[Request, Actor | None], Awaitable[Response]]


async def request_actor(request: Request) -> Actor | None:
    settings: Settings = request.app.state.settings
    return await authenticate_request(
        request.method, request.headers, request.cookies, settings.admin_token
    )


async def json_body(request: Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise ValidationFailed("Request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ValidationFailed("Request body must be a JSON object")
    return body


def endpoint(render: Renderer) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """Wrap a dialect handler: authenticate, run, render domain errors in the dialect's shape."""

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                return await handler(request, await request_actor(request))
            except DomainError as exc:
                return render(exc, STATUS.get(exc.code, 500))

        run.__name__ = handler.__name__
        run.__doc__ = handler.__doc__
        return run

    return wrap


def json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


__all__ = ["JSONResponse", "endpoint", "json", "json_body", "request_actor"]
