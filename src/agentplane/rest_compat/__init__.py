"""REST compatibility: documented control-plane APIs served over the same resolvers.

Each dialect module declares its operations on a `Dialect`; the router and the
OpenAPI documents are both built from those declarations.
"""

from starlette.responses import Response
from starlette.routing import BaseRoute

from agentplane.errors import DomainError
from agentplane.rest_compat import koda, kubiya, openapi, opencrane, opsclaw
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


def operations() -> list[Operation]:
    return [op for dialect in [*DIALECTS, meta] for op in dialect.operations]


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
    return [route for dialect in [*DIALECTS, meta] for route in dialect.routes()]
