"""OpenCrane (`/api/v1`): camelCase, errors `{error, code, detail}`.

Tenants, access tokens, audit, AI budgets, provider keys and token usage; each
handler maps the documented JSON onto a resolver call and its result back
(permissions, tenant filters and business rules live in the resolvers).
"""

from typing import Any

from starlette.responses import Response

from agentplane.core.errors import DomainError, ValidationFailed
from agentplane.models import AccessToken, BudgetScope, Tenant
from agentplane.resolvers import audit, budgets, provider_keys, server, tenants, tokens, usage
from agentplane.resolvers.budgets import BudgetView
from agentplane.resolvers.pagination import Page
from agentplane.rest_compat.common import (
    BOOL,
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
    no_content,
    nullable,
    obj,
    parse_datetime,
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
    "TENANT_SUSPENDED": "tenant_suspended",
    "NOT_CONFIGURED": "not_configured",
    "UNAVAILABLE": "unavailable",
    "EGRESS_REFUSED": "egress_refused",
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
    fields={"after": "cursor", "account": "userId"},
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


# ---------------------------------------------------------------- tenants
V1 = "/api/v1"
PHASE = {"type": "string", "enum": ["active", "suspended", "deleted"]}
TENANT = record(
    {
        "name": STR,
        "displayName": STR,
        "email": STR,
        "team": STR,
        "phase": PHASE,
        "createdAt": DATETIME,
    }
)
TENANT_STATUS = record({"name": STR, "status": PHASE})
_FIELDS = {
    "displayName": {"type": "string", "maxLength": 200},
    "email": {"type": "string", "maxLength": 320},
    "team": {"type": "string", "maxLength": 200},
}
_OPERATOR_ONLY = (
    "`resources`, `skillAllowlist`, `policyRef` and `monthlyBudgetUsd` (Kubernetes operator "
    "settings) are accepted and ignored; set a tenant's budget with "
    "`PUT /api/v1/ai-budget/...` or GraphQL `setBudget`."
)


def tenant_record(tenant: Tenant) -> dict[str, Any]:
    return {
        "name": tenant.name,
        "displayName": tenant.display_name,
        "email": tenant.email,
        "team": tenant.team,
        "phase": tenant.phase.value,
        "createdAt": iso(tenant.created_at),
    }


def tenant_status(tenant: Tenant, status: int = 200) -> Response:
    return json({"name": tenant.name, "status": tenant.phase.value}, status)


async def _all(fetch: Any) -> list[Any]:
    """Every item of a keyset-paginated resolver, page by page (OpenCrane lists are whole)."""
    items: list[Any] = []
    after: str | None = None
    while True:
        page: Page[Any] = await fetch(after)
        items.extend(page.items)
        if not page.has_next or not page.items:
            return items
        after = page.cursor(page.items[-1])


@opencrane.route(
    "GET",
    V1 + "/tenants",
    summary="List tenants (a tenant's callers see their own)",
    ok=Resp(array(TENANT), "Tenant list."),
)
async def list_tenants(call: Call) -> Response:
    rows = await _all(lambda after: tenants.list_tenants(call.actor, 100, after))
    return json([tenant_record(t) for t in rows])


@opencrane.route(
    "POST",
    V1 + "/tenants",
    summary="Create a tenant (platform admins)",
    description=_OPERATOR_ONLY,
    ok={201: Resp(TENANT_STATUS, "Tenant created.")},
    body=obj({"name": {"type": "string", "minLength": 1, "maxLength": 63}, **_FIELDS}, ("name",)),
)
async def create_tenant(call: Call) -> Response:
    tenant = await tenants.create_tenant(
        call.actor,
        name=call.body["name"],
        display_name=call.body.get("displayName", ""),
        email=call.body.get("email", ""),
        team=call.body.get("team", ""),
    )
    return tenant_status(tenant, 201)


@opencrane.route(
    "GET", V1 + "/tenants/{name}", summary="Get a tenant by name", ok=Resp(TENANT, "Tenant detail.")
)
async def get_tenant(call: Call) -> Response:
    return json(tenant_record(await tenants.get_tenant(call.actor, call.path["name"])))


@opencrane.route(
    "PUT",
    V1 + "/tenants/{name}",
    summary="Update a tenant's details (platform admins); absent fields stay as they are",
    description=_OPERATOR_ONLY,
    ok=Resp(TENANT_STATUS, "Tenant updated."),
    body=obj(_FIELDS),
)
async def update_tenant(call: Call) -> Response:
    tenant = await tenants.update_tenant(
        call.actor,
        call.path["name"],
        display_name=call.body.get("displayName"),
        email=call.body.get("email"),
        team=call.body.get("team"),
    )
    return tenant_status(tenant)


@opencrane.route(
    "DELETE",
    V1 + "/tenants/{name}",
    summary="Delete a tenant (platform admins): its tokens stop at once; restorable for 30 days",
    ok=Resp(TENANT_STATUS, "Tenant deleted."),
)
async def delete_tenant(call: Call) -> Response:
    return tenant_status(await tenants.delete_tenant(call.actor, call.path["name"]))


@opencrane.route(
    "POST",
    V1 + "/tenants/{name}/suspend",
    summary="Suspend a tenant (platform admins): reads work, writes and new tasks do not",
    ok=Resp(TENANT_STATUS, "Tenant suspended."),
)
async def suspend_tenant(call: Call) -> Response:
    return tenant_status(await tenants.suspend_tenant(call.actor, call.path["name"]))


@opencrane.route(
    "POST",
    V1 + "/tenants/{name}/resume",
    summary="Resume a suspended tenant (platform admins)",
    ok=Resp(TENANT_STATUS, "Tenant resumed."),
)
async def resume_tenant(call: Call) -> Response:
    return tenant_status(await tenants.resume_tenant(call.actor, call.path["name"]))


# ---------------------------------------------------------------- access tokens
ACCESS_TOKEN = record(
    {
        "id": STR,
        "name": STR,
        "owner": nullable(STR),
        "role": STR,
        "tenant": nullable(STR),
        "prefix": STR,
        "createdAt": DATETIME,
        "expiresAt": nullable(DATETIME),
        "lastUsedAt": nullable(DATETIME),
    }
)
NEW_TOKEN = record(
    {
        "id": STR,
        "plainTextToken": STR,
        "name": STR,
        "owner": nullable(STR),
        "role": STR,
        "tenant": nullable(STR),
        "expiresAt": nullable(DATETIME),
    }
)


async def _tenant_names(call: Call, rows: list[AccessToken]) -> dict[str, str]:
    ids = sorted({r.tenant_id for r in rows if r.tenant_id is not None})
    found = await tenants.load_tenants(call.actor, ids)
    return {t.id: t.name for t in found if t is not None}


@opencrane.route(
    "GET",
    V1 + "/access-tokens",
    summary="List access tokens that are not revoked (never their plaintext)",
    ok=Resp(array(ACCESS_TOKEN), "Token list."),
)
async def list_access_tokens(call: Call) -> Response:
    rows = await _all(lambda after: tokens.list_access_tokens(call.actor, 100, after, False))
    names = await _tenant_names(call, rows)
    return json(
        [
            {
                "id": r.id,
                "name": r.name,
                "owner": r.owner or r.owner_user_id or r.created_by,
                "role": r.role,
                "tenant": names.get(r.tenant_id) if r.tenant_id else None,
                "prefix": r.prefix,
                "createdAt": iso(r.created_at),
                "expiresAt": iso(r.expires_at),
                "lastUsedAt": iso(r.last_used_at),
            }
            for r in rows
        ]
    )


@opencrane.route(
    "POST",
    V1 + "/access-tokens",
    summary="Create an access token; its plaintext is in this response only",
    description=(
        "`tenant` (a tenant name) defaults to the caller's own. `role` defaults to `viewer`, "
        "except that a platform caller naming no tenant gets a platform-scope token with its "
        "own role. `owner` (free text: whom the token is for) is recorded and listed; it "
        "defaults to the creator."
    ),
    ok={
        201: Resp(NEW_TOKEN, "Token created. The plainTextToken field will not be returned again.")
    },
    body=obj(
        {
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "owner": {"type": "string", "minLength": 1, "maxLength": 200},
            "expiresAt": {"type": "string", "format": "date-time"},
            "role": STR,
            "tenant": STR,
        },
        ("name",),
    ),
)
async def create_access_token(call: Call) -> Response:
    token, plaintext = await tokens.create_access_token(
        call.actor,
        name=call.body["name"],
        tenant=call.body.get("tenant"),
        role=call.body.get("role"),
        expires_at=parse_datetime(call.body.get("expiresAt"), "expiresAt"),
        owner=call.body.get("owner"),
    )
    names = await _tenant_names(call, [token])
    body = {
        "id": token.id,
        "plainTextToken": plaintext,
        "name": token.name,
        "owner": token.owner,
        "role": token.role,
        "tenant": names.get(token.tenant_id) if token.tenant_id else None,
        "expiresAt": iso(token.expires_at),
    }
    return json(body, 201, headers={"Cache-Control": "no-store"})


@opencrane.route(
    "DELETE",
    V1 + "/access-tokens/{id}",
    summary="Revoke an access token: refused from its next request on",
    ok={204: Resp(None, "Token deleted.")},
)
async def delete_access_token(call: Call) -> Response:
    await tokens.revoke_access_token(call.actor, call.path["id"])
    return no_content()


# ---------------------------------------------------------------- audit
AUDIT_ENTRY = record(
    {
        "id": STR,
        "timestamp": DATETIME,
        "tenant": nullable(STR),
        "action": STR,
        "resource": STR,
        "message": STR,
        "actor": STR,
        "outcome": {"type": "string", "enum": ["success", "denied", "failure"]},
    }
)
PAGINATION = obj(
    {
        "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
        "nextCursor": {"type": "string", "description": "Absent when hasMore is false."},
        "hasMore": BOOL,
    },
    ("limit", "hasMore"),
)
AUDIT_PAGE_SIZE = 100  # the resolver's largest page; a larger `limit` is read page by page


def _message(event: Any) -> str:
    detail = event.details.get("message") if isinstance(event.details, dict) else None
    return str(detail) if detail else f"{event.action} by {event.actor}: {event.outcome}"


@opencrane.route(
    "GET",
    V1 + "/audit",
    summary="Audit log entries, newest first, with keyset (cursor) pagination",
    ok=Resp(record({"data": array(AUDIT_ENTRY), "pagination": PAGINATION}), "Audit entries."),
    query=(
        Param("tenant", STR, description="Filter to a specific tenant (by name)."),
        Param("action", STR, description="Filter to one action, e.g. `tenant.create`."),
        Param("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}),
        Param("cursor", STR, description="`nextCursor` of the previous page."),
    ),
)
async def audit_log(call: Call) -> Response:
    limit: int = call.query["limit"]
    after: str | None = call.query.get("cursor")
    events: list[Any] = []
    has_more = False
    try:
        while len(events) < limit:
            page = await audit.list_audit_events(
                call.actor,
                min(AUDIT_PAGE_SIZE, limit - len(events)),
                after,
                call.query.get("tenant"),
                call.query.get("action"),
            )
            events.extend(page.items)
            has_more = page.has_next
            if not page.has_next or not page.items:
                break
            after = page.cursor(page.items[-1])
    except ValidationFailed as exc:
        if exc.details.get("field") == "after":
            raise ValidationFailed("Malformed cursor", field="cursor") from None
        raise
    ids = sorted({e.tenant_id for e in events if e.tenant_id is not None})
    names = {t.id: t.name for t in await tenants.load_tenants(call.actor, ids) if t is not None}
    pagination: dict[str, Any] = {"limit": limit, "hasMore": has_more}
    if has_more and events:
        pagination["nextCursor"] = page.cursor(events[-1])
    data = [
        {
            "id": e.id,
            "timestamp": iso(e.created_at),
            "tenant": names.get(e.tenant_id) if e.tenant_id else None,
            "action": e.action,
            "resource": e.resource,
            "message": _message(e),
            "actor": e.actor,
            "outcome": e.outcome,
        }
        for e in events
    ]
    return json({"data": data, "pagination": pagination})


# ---------------------------------------------------------------- AI budgets
BUDGET_PROPS = {
    "scope": {"type": "string", "enum": [s.value for s in BudgetScope]},
    "monthlyLimitUsd": nullable(NUM),
    "currentSpendUsd": NUM,
    "reservedUsd": NUM,
    "budgetAlertState": {"type": "string", "enum": list(budgets.ALERT_STATES)},
    "window": STR,
}
BUDGET = record(BUDGET_PROPS)
ACCOUNT_BUDGET = record({"userId": STR, **BUDGET_PROPS})
LIMIT_BODY = obj(
    {"monthlyLimitUsd": {"type": "number", "minimum": 0, "maximum": 1_000_000_000}},
    ("monthlyLimitUsd",),
)
_NULL_LIMIT = "`monthlyLimitUsd` is null when no ceiling is set (spend is still counted)."


def budget_record(view: BudgetView) -> dict[str, Any]:
    limit = view.monthly_limit_usd
    return {
        "scope": view.scope.value,
        "monthlyLimitUsd": None if limit is None else float(limit),
        "currentSpendUsd": float(view.current_spend_usd),
        "reservedUsd": float(view.reserved_usd),
        "budgetAlertState": view.alert_state,
        "window": view.window,
    }


def account_budget_record(view: BudgetView) -> dict[str, Any]:
    return {"userId": view.account or "", **budget_record(view)}


@opencrane.route(
    "GET",
    V1 + "/ai-budget/global",
    summary="The global monthly spend ceiling (platform callers)",
    description=_NULL_LIMIT,
    ok=Resp(BUDGET, "Global budget."),
)
async def get_global_budget(call: Call) -> Response:
    return json(budget_record(await budgets.get_budget(call.actor, BudgetScope.GLOBAL)))


@opencrane.route(
    "PUT",
    V1 + "/ai-budget/global",
    summary="Set the global monthly spend ceiling (platform admins)",
    ok=Resp(BUDGET, "Global budget updated."),
    body=LIMIT_BODY,
)
async def set_global_budget(call: Call) -> Response:
    view = await budgets.set_budget(
        call.actor, scope=BudgetScope.GLOBAL, monthly_limit_usd=call.body["monthlyLimitUsd"]
    )
    return json(budget_record(view))


@opencrane.route(
    "GET",
    V1 + "/ai-budget/accounts",
    summary="Per-account monthly spend ceilings you may see",
    ok=Resp(array(ACCOUNT_BUDGET), "Account budgets."),
)
async def list_account_budgets(call: Call) -> Response:
    rows = await _all(lambda after: budgets.list_budgets(call.actor, 100, after))
    views = [budgets.view_of(r) for r in rows if r.scope == BudgetScope.ACCOUNT]
    return json([account_budget_record(v) for v in views])


@opencrane.route(
    "PUT",
    V1 + "/ai-budget/accounts/{userId}",
    summary="Create or update an account's ceiling (a user `usr_…` or token `tok_…` ID)",
    ok=Resp(ACCOUNT_BUDGET, "Account budget updated."),
    body=LIMIT_BODY,
)
async def set_account_budget(call: Call) -> Response:
    view = await budgets.set_budget(
        call.actor,
        scope=BudgetScope.ACCOUNT,
        monthly_limit_usd=call.body["monthlyLimitUsd"],
        account=call.path["userId"],
    )
    return json(account_budget_record(view))


@opencrane.route(
    "DELETE",
    V1 + "/ai-budget/accounts/{userId}",
    summary="Remove an account's ceiling; answers the removed budget",
    ok=Resp(ACCOUNT_BUDGET, "Budget removed."),
)
async def remove_account_budget(call: Call) -> Response:
    view = await budgets.remove_budget(
        call.actor, scope=BudgetScope.ACCOUNT, account=call.path["userId"]
    )
    return json(account_budget_record(view))


@opencrane.route(
    "GET",
    V1 + "/ai-budget/{tenantName}/spend",
    summary="A tenant's current spend and budget state",
    description=_NULL_LIMIT,
    ok=Resp(BUDGET, "Spend data."),
)
async def tenant_spend(call: Call) -> Response:
    view = await budgets.get_budget(call.actor, BudgetScope.TENANT, call.path["tenantName"])
    return json(budget_record(view))


# ---------------------------------------------------------------- provider keys
PROVIDER_KEY = record({"provider": STR, "configured": BOOL, "updatedAt": nullable(DATETIME)})
_TENANT_PARAM = Param(
    "tenant", STR, description="A tenant's name: required for platform callers, else your own."
)


@opencrane.route(
    "GET",
    V1 + "/providers/keys",
    summary="Configured provider API keys (never their value)",
    ok=Resp(array(PROVIDER_KEY), "Provider key status list."),
    query=(_TENANT_PARAM,),
)
async def list_provider_keys(call: Call) -> Response:
    rows = await provider_keys.list_provider_keys(call.actor, call.query.get("tenant"))
    return json(
        [
            {"provider": r.provider, "configured": r.configured, "updatedAt": iso(r.updated_at)}
            for r in rows
        ]
    )


@opencrane.route(
    "PUT",
    V1 + "/providers/keys/{provider}",
    summary="Create or update a provider API key (stored encrypted, never returned)",
    ok=Resp(PROVIDER_KEY, "Key updated."),
    body=obj({"apiKey": {"type": "string", "minLength": 1, "maxLength": 4096}}, ("apiKey",)),
    query=(_TENANT_PARAM,),
    errors=(503,),
)
async def set_provider_key(call: Call) -> Response:
    status = await provider_keys.set_provider_key(
        call.actor,
        call.path["provider"],
        api_key=call.body["apiKey"],
        tenant=call.query.get("tenant"),
    )
    return json(
        {"provider": status.provider, "configured": True, "updatedAt": iso(status.updated_at)}
    )


@opencrane.route(
    "DELETE",
    V1 + "/providers/keys/{provider}",
    summary="Delete a provider API key (the installation's key applies again)",
    ok={204: Resp(None, "Key deleted.")},
    query=(_TENANT_PARAM,),
)
async def delete_provider_key(call: Call) -> Response:
    await provider_keys.delete_provider_key(
        call.actor, call.path["provider"], tenant=call.query.get("tenant")
    )
    return no_content()


@opencrane.route(
    "GET",
    V1 + "/metrics/server",
    summary="Latest server utilisation snapshot (CPU, memory, storage, active tenants)",
    description=(
        "Platform-scoped callers only. Storage is the disk holding the database (its "
        "directory for SQLite, the working directory otherwise)."
    ),
    ok=Resp(
        record(
            {
                "cpuPercent": NUM,
                "memoryUsedBytes": INT,
                "memoryTotalBytes": INT,
                "storageUsedBytes": INT,
                "storageTotalBytes": INT,
                "activeTenants": INT,
                "sampledAt": DATETIME,
            }
        ),
        "Server utilisation snapshot.",
    ),
)
async def server_metrics(call: Call) -> Response:
    shot = await server.snapshot(call.actor, call.settings.database_url)
    return json(
        {
            "cpuPercent": shot.cpu_percent,
            "memoryUsedBytes": shot.memory_used_bytes,
            "memoryTotalBytes": shot.memory_total_bytes,
            "storageUsedBytes": shot.storage_used_bytes,
            "storageTotalBytes": shot.storage_total_bytes,
            "activeTenants": shot.active_tenants,
            "sampledAt": iso(shot.sampled_at),
        }
    )
