"""The REST transport: documented control-plane APIs (and sign-in) served over the same resolvers.
Imports the application layer, models/ and core/; never http/, schema/ or mcp/."""

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute

from agentplane.core.errors import DomainError, NotFound
from agentplane.rest_compat import (  # the *_auth, *_iam, *_mcp modules add to their dialect
    koda,
    koda_approvals,  # noqa: F401
    koda_auth,  # noqa: F401
    koda_knowledge,  # noqa: F401
    kubiya,
    openapi,
    opencrane,
    opencrane_mcp,  # noqa: F401
    opsclaw,
    opsclaw_iam,  # noqa: F401
)
from agentplane.rest_compat.common import OBJ, STR, Call, Dialect, Operation, Resp, json, record

DIALECTS = [koda.koda, kubiya.kubiya, opencrane.opencrane, opsclaw.opsclaw]


def _render(exc: DomainError, status: int) -> Response:
    return json({"error": {"code": exc.code, "message": exc.message}}, status)


meta = Dialect(
    name="agentplane",
    title="OpenAPI",
    render_error=_render,
    error_schema=record({"error": record({"code": STR, "message": STR})}),
)
OPENAPI_DOC = Resp({**OBJ, "required": ["openapi", "info", "paths"]}, "An OpenAPI 3.1 document")


def _dialects() -> list[Dialect]:
    from agentplane.rest_compat.signin import auth_api  # late: it builds on rest_compat.common

    return [*DIALECTS, auth_api, meta]


def operations() -> list[Operation]:
    return [op for dialect in _dialects() for op in dialect.operations]


def document(prefix: str = "/", title: str = "agentplane REST compatibility") -> dict[str, object]:
    ops = [op for op in operations() if op.path.startswith(prefix)]
    return openapi.build(
        ops,
        title,
        "Koda, Kubiya, OpenCrane and OpsClaw control-plane paths served by agentplane from "
        "the same resolvers as its GraphQL API (`/graphql`).",
    )


@meta.route("GET", "/openapi.json", summary="Every REST path", ok=OPENAPI_DOC, public=True)
async def openapi_all(call: Call) -> Response:
    return json(document())


@meta.route(
    "GET",
    "/api/v1/openapi.json",
    summary="The `/api/v1` paths (Kubiya and OpenCrane)",
    ok=OPENAPI_DOC,
    public=True,
)
async def openapi_api_v1(call: Call) -> Response:
    return json(document("/api/v1/", "agentplane /api/v1"))


@meta.route(
    "GET",
    "/openapi/control-plane.json",
    summary="The Koda contract: control-plane and runtime paths",
    ok=OPENAPI_DOC,
    public=True,
)
async def openapi_koda(call: Call) -> Response:
    koda_ops = [op for op in operations() if op.dialect is koda.koda]
    return json(openapi.build(koda_ops, "agentplane: Koda control plane and runtime"))


def routes() -> list[BaseRoute]:
    return [route for dialect in _dialects() for route in dialect.routes()]


class MethodNotAllowed(DomainError):
    code = "METHOD_NOT_ALLOWED"


def _dialect_for(path: str) -> Dialect | None:
    """The dialect whose paths `path` is among (or next to), by the longest shared prefix."""
    best: tuple[int, Dialect | None] = (0, None)
    for op in operations():
        if op.dialect is meta:
            continue
        prefix = op.path.split("{")[0].rstrip("/")
        family = "/".join(prefix.split("/")[:3])  # e.g. /api/v1, /api/runtime, /v1/agents
        for candidate in (prefix, family):
            if candidate and path.startswith(candidate) and len(candidate) > best[0]:
                best = (len(candidate), op.dialect)
    return best[1]


async def http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths and methods under a dialect's prefix answer in its envelope."""
    assert isinstance(exc, HTTPException)
    dialect = _dialect_for(request.url.path)
    if dialect is None:
        return PlainTextResponse(exc.detail, exc.status_code, headers=exc.headers)
    error: DomainError
    if exc.status_code == 405:
        error = MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}")
    elif exc.status_code == 404:
        error = NotFound(f"No such path: {request.url.path}")
    else:
        error = DomainError(str(exc.detail))
    response = dialect.render(error, exc.status_code)
    response.headers.update(exc.headers or {})
    return response


exception_handlers = {404: http_error, 405: http_error}
