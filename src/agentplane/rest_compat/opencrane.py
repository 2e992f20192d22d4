"""OpenCrane (`/api/v1`): camelCase, errors `{error, code, detail}`.

Only the paths that stand on what exists today are here; tenants lifecycle,
budgets, audit, access tokens, provider keys and auth come with the identity
work (see README, REST compatibility).
"""

from starlette.responses import Response

from agentplane.errors import DomainError
from agentplane.resolvers import usage
from agentplane.rest_compat.common import (
    DATETIME,
    INT,
    NUM,
    STR,
    Call,
    Dialect,
    MalformedRequest,
    Param,
    Resp,
    array,
    iso,
    json,
    obj,
    record,
)

_CODES = {
    "UNAUTHENTICATED": "unauthorized",
    "FORBIDDEN": "forbidden",
    "NOT_FOUND": "not_found",
    "VALIDATION": "invalid_request",
    "CONFLICT": "conflict",
    "RATE_LIMITED": "rate_limited",
    "METHOD_NOT_ALLOWED": "method_not_allowed",
}


def render_error(exc: DomainError, status: int) -> Response:
    code = "invalid_json" if isinstance(exc, MalformedRequest) else _CODES.get(exc.code)
    body = {"error": exc.message, "code": code or "internal_error"}
    field = exc.details.get("field")
    if isinstance(field, str):
        body["detail"] = f"field: {field}"
    return json(body, status)


opencrane = Dialect(
    name="opencrane",
    title="OpenCrane",
    render_error=render_error,
    error_schema=obj({"error": STR, "code": STR, "detail": STR}, required=("error", "code")),
)

TOKEN_USAGE = record(
    {
        "tenant": STR,
        "model": STR,
        "inputTokens": INT,
        "outputTokens": INT,
        "totalCostUsd": NUM,
        "recordedAt": DATETIME,
    }
)


@opencrane.route(
    "GET",
    "/api/v1/token-usage",
    summary="List token usage records, newest first",
    ok=Resp(array(TOKEN_USAGE), "Token usage records."),
    query=(
        Param("tenant", STR, description="A tenant's name"),
        Param("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}),
    ),
)
async def token_usage(call: Call) -> Response:
    records = await usage.list_usage_records(
        call.actor, call.query.get("tenant"), call.query["limit"]
    )
    return json(
        [
            {
                "tenant": r.tenant.name,
                "model": r.model,
                "inputTokens": r.input_tokens,
                "outputTokens": r.output_tokens,
                "totalCostUsd": float(r.cost_usd),
                "recordedAt": iso(r.created_at),
            }
            for r in records
        ]
    )
