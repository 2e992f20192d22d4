"""OpsClaw identity, tenants and plan (`/v1`): principals, role assignments and
definitions, personal access tokens, tenant delete/restore, the billing plan.

A principal is a user account (`usr_…`; `subjectId` is its email); a role assignment
gives it one of the five role definitions at a scope, `/` (the platform) or
`/tenants/{name}`; a PAT acts for its principal with the role it holds. Lists answer
`{data, nextCursor, hasMore}` as `/v1/agent-runs` does.
"""

from datetime import datetime
from typing import Any

from starlette.responses import Response

from agentplane.models import AccessToken, BudgetScope, RoleAssignment, RoleDefinition, Tenant, User
from agentplane.resolvers import budgets, roles, tenants, users
from agentplane.resolvers.permissions import ROLE_DEFS
from agentplane.resolvers.tenants import RESTORE_WINDOW
from agentplane.rest_compat.common import (
    BOOL,
    DATETIME,
    NUM,
    STR,
    Call,
    Param,
    Resp,
    array,
    iso,
    json,
    nullable,
    obj,
    parse_datetime,
    record,
)
from agentplane.rest_compat.opsclaw import opsclaw

PAGE_QUERY = (
    Param("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}),
    Param("cursor", STR),
)
SCOPE = {"type": "string", "pattern": "^/(tenants/[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)?$"}
ROLE_NAME = {"type": "string", "enum": list(ROLE_DEFS)}
FUTURE = {"type": "string", "format": "date-time"}


def _list(items: list[Any], next_cursor: str | None) -> dict[str, Any]:
    return {"data": items, "nextCursor": next_cursor, "hasMore": next_cursor is not None}


def page_of(schema: dict[str, Any]) -> Resp:
    return Resp(record({"data": array(schema), "nextCursor": nullable(STR), "hasMore": BOOL}))


# ---------------------------------------------------------------- role definitions
ROLE = record(
    {
        "id": STR,
        "name": STR,
        "description": STR,
        "permissions": array(STR),
        "assignableScopes": array(STR),
        "builtin": BOOL,
    }
)
_SCOPES = {"platform": ["/"], "tenant": ["/tenants/*"], "any": ["/", "/tenants/*"]}


def role_record(role: RoleDefinition) -> dict[str, Any]:
    return {
        "id": role.name,
        "name": role.name,
        "description": role.description,
        "permissions": list(role.permissions),
        "assignableScopes": _SCOPES.get(role.scope, []),
        "builtin": role.builtin,
    }


@opsclaw.route("GET", "/v1/role-definitions", summary="The five predefined roles", ok=page_of(ROLE))
async def list_role_definitions(call: Call) -> Response:
    return json(_list([role_record(r) for r in await roles.list_roles(call.actor)], None))


@opsclaw.route(
    "GET",
    "/v1/role-definitions/{id}",
    summary="One role definition by id (its name)",
    ok=Resp(ROLE),
)
async def get_role_definition(call: Call) -> Response:
    return json(role_record(await roles.get_role(call.actor, call.path["id"])))


# ---------------------------------------------------------------- role assignments
ASSIGNMENT = record(
    {
        "id": STR,
        "principalId": STR,
        "roleDefinitionId": STR,
        "scope": STR,
        "tenantId": nullable(STR),
        "createdAt": DATETIME,
    }
)


def assignment_record(row: RoleAssignment) -> dict[str, Any]:
    tenant: Tenant | None = row.tenant
    return {
        "id": row.id,
        "principalId": row.user_id,
        "roleDefinitionId": row.role,
        "scope": f"/tenants/{tenant.name}" if tenant is not None else "/",
        "tenantId": row.tenant_id,
        "createdAt": iso(row.created_at),
    }


@opsclaw.route(
    "GET",
    "/v1/role-assignments",
    summary="Role assignments the caller may see (a tenant's own)",
    ok=page_of(ASSIGNMENT),
    query=(Param("principalId", STR), *PAGE_QUERY),
)
async def list_role_assignments(call: Call) -> Response:
    page = await roles.list_assignments_page(
        call.actor, call.query["limit"], call.query.get("cursor"), call.query.get("principalId")
    )
    next_cursor = page.cursor(page.items[-1]) if page.has_next else None
    return json(_list([assignment_record(a) for a in page.items], next_cursor))


@opsclaw.route(
    "POST",
    "/v1/role-assignments",
    summary="Grant a principal a role at a scope (replaces its role at that scope)",
    ok={201: Resp(ASSIGNMENT, "Granted")},
    body=obj(
        {"principalId": STR, "roleDefinitionId": ROLE_NAME, "scope": SCOPE},
        required=("principalId", "roleDefinitionId", "scope"),
    ),
)
async def create_role_assignment(call: Call) -> Response:
    scope = call.body["scope"]
    assignment = await roles.assign_role(
        call.actor,
        call.body["principalId"],
        role=call.body["roleDefinitionId"],
        tenant=scope.removeprefix("/tenants/") if scope != "/" else None,
        platform=scope == "/",
    )
    return json(assignment_record(await roles.get_assignment(call.actor, assignment.id)), 201)


@opsclaw.route(
    "GET", "/v1/role-assignments/{id}", summary="One role assignment", ok=Resp(ASSIGNMENT)
)
async def get_role_assignment(call: Call) -> Response:
    return json(assignment_record(await roles.get_assignment(call.actor, call.path["id"])))


@opsclaw.route(
    "DELETE",
    "/v1/role-assignments/{id}",
    summary="Revoke a role assignment",
    ok=Resp(record({"id": STR, "deleted": BOOL})),
)
async def delete_role_assignment(call: Call) -> Response:
    assignment = await roles.unassign_role(call.actor, call.path["id"])
    return json({"id": assignment.id, "deleted": True})


# ---------------------------------------------------------------- principals
PRINCIPAL = record(
    {
        "id": STR,
        "type": {"type": "string", "const": "user"},
        "subjectId": STR,
        "displayName": STR,
        "status": {"type": "string", "enum": ["active", "disabled", "expired"]},
        "notAfter": nullable(DATETIME),
        "roleAssignments": array(ASSIGNMENT),
        "createdAt": DATETIME,
        "updatedAt": DATETIME,
    }
)
PAT = record({"id": STR, "token": STR, "expiresAt": nullable(DATETIME)})


def principal_record(user: User, assignments: list[RoleAssignment]) -> dict[str, Any]:
    status = "disabled" if user.disabled else "active"
    if (
        status == "active"
        and user.not_after is not None
        and user.not_after <= datetime.now(user.not_after.tzinfo)
    ):
        status = "expired"
    return {
        "id": user.id,
        "type": "user",
        "subjectId": user.email,
        "displayName": user.display_name,
        "status": status,
        "notAfter": iso(user.not_after),
        "roleAssignments": [assignment_record(a) for a in assignments],
        "createdAt": iso(user.created_at),
        "updatedAt": iso(user.updated_at),
    }


async def _principal(call: Call, user: User) -> dict[str, Any]:
    found = await users.role_assignments(call.actor, [user.id])
    return principal_record(user, found[user.id])


def _pat(token: AccessToken, plaintext: str) -> dict[str, Any]:
    return {"id": token.id, "token": plaintext, "expiresAt": iso(token.expires_at)}


@opsclaw.route(
    "GET",
    "/v1/principals",
    summary="Principals the caller may see",
    ok=page_of(PRINCIPAL),
    query=PAGE_QUERY,
)
async def list_principals(call: Call) -> Response:
    page = await users.list_users_page(call.actor, call.query["limit"], call.query.get("cursor"))
    found = await users.role_assignments(call.actor, [u.id for u in page.items])
    next_cursor = page.cursor(page.items[-1]) if page.has_next else None
    return json(_list([principal_record(u, found[u.id]) for u in page.items], next_cursor))


@opsclaw.route(
    "POST",
    "/v1/principals",
    summary="Create a principal holding a role, with a first PAT (shown once)",
    description=(
        "`role` (default `viewer`) is granted in `tenant` (a tenant's name; the caller's "
        "own by default). The principal has no password: it uses its PAT, or OIDC."
    ),
    ok={201: Resp(record({"principal": PRINCIPAL, "pat": PAT}), "Created")},
    body=obj(
        {
            "subjectId": {"type": "string", "minLength": 3, "maxLength": 320},
            "displayName": {"type": "string", "maxLength": 200},
            "role": ROLE_NAME,
            "tenant": STR,
            "notAfter": FUTURE,
        },
        required=("subjectId",),
    ),
)
async def create_principal(call: Call) -> Response:
    body = call.body
    user, token, plaintext = await users.create_principal(
        call.actor,
        email=body["subjectId"],
        role=body.get("role", "viewer"),
        tenant=body.get("tenant"),
        display_name=body.get("displayName", ""),
        not_after=parse_datetime(body.get("notAfter"), "notAfter"),
    )
    return json({"principal": await _principal(call, user), "pat": _pat(token, plaintext)}, 201)


@opsclaw.route("GET", "/v1/principals/{id}", summary="One principal", ok=Resp(PRINCIPAL))
async def get_principal(call: Call) -> Response:
    return json(await _principal(call, await users.get_user(call.actor, call.path["id"])))


@opsclaw.route(
    "PATCH",
    "/v1/principals/{id}",
    summary="Rename a principal (`subjectId`) or set its expiry (`notAfter`, null clears it)",
    ok=Resp(PRINCIPAL),
    body=obj(
        {
            "subjectId": {"type": "string", "minLength": 3, "maxLength": 320},
            "displayName": {"type": "string", "maxLength": 200},
            "notAfter": nullable(FUTURE),
        }
    ),
)
async def update_principal(call: Call) -> Response:
    body = call.body
    user = await users.update_user(
        call.actor,
        call.path["id"],
        email=body.get("subjectId"),
        display_name=body.get("displayName"),
        not_after=parse_datetime(body.get("notAfter"), "notAfter"),
        clear_not_after="notAfter" in body and body["notAfter"] is None,
    )
    return json(await _principal(call, user))


@opsclaw.route(
    "DELETE",
    "/v1/principals/{id}",
    summary="Revoke a principal: its role assignments, sessions and tokens end",
    ok=Resp(PRINCIPAL),
)
async def delete_principal(call: Call) -> Response:
    return json(await _principal(call, await users.revoke_user(call.actor, call.path["id"])))


# ---------------------------------------------------------------- tokens
@opsclaw.route(
    "POST",
    "/v1/auth/tokens",
    summary="Mint a PAT for a principal (yourself by default); shown once",
    description=(
        "The PAT acts for the principal with the role it holds now; `expiresAt` defaults "
        "to 30 days and never passes the principal's `notAfter`. Minting for another "
        "principal needs `user:write` over it."
    ),
    ok={
        201: Resp(
            record(
                {
                    "id": STR,
                    "token": STR,
                    "name": STR,
                    "principalId": STR,
                    "role": STR,
                    "tenantId": nullable(STR),
                    "expiresAt": nullable(DATETIME),
                    "createdAt": DATETIME,
                }
            ),
            "Created",
        )
    },
    body=obj(
        {
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "principalId": STR,
            "expiresAt": FUTURE,
        }
    ),
    body_required=False,
)
async def create_token(call: Call) -> Response:
    body = call.body
    token, plaintext = await users.mint_user_token(
        call.actor,
        user_id=body.get("principalId"),
        name=body.get("name", "pat"),
        expires_at=parse_datetime(body.get("expiresAt"), "expiresAt"),
    )
    return json(
        {
            "id": token.id,
            "token": plaintext,
            "name": token.name,
            "principalId": token.owner_user_id,
            "role": token.role,
            "tenantId": token.tenant_id,
            "expiresAt": iso(token.expires_at),
            "createdAt": iso(token.created_at),
        },
        201,
    )


# ---------------------------------------------------------------- tenants and plan
TENANT = record(
    {
        "id": STR,
        "name": STR,
        "status": {"type": "string", "enum": ["active", "suspended", "deleted"]},
        "deletedAt": nullable(DATETIME),
        "restorableUntil": nullable(DATETIME),
        "updatedAt": DATETIME,
    }
)


def tenant_record(tenant: Tenant) -> dict[str, Any]:
    deleted = tenant.deleted_at
    return {
        "id": tenant.id,
        "name": tenant.name,
        "status": tenant.phase.value,
        "deletedAt": iso(deleted),
        "restorableUntil": iso(deleted + RESTORE_WINDOW) if deleted else None,
        "updatedAt": iso(tenant.updated_at),
    }


async def _tenant(call: Call) -> Tenant:
    """The tenant `{id}` names: its `ten_…` ID, or its name."""
    ref = call.path["id"]
    if ref.startswith("ten_"):
        return await tenants.get_tenant_by_id(call.actor, ref)
    return await tenants.get_tenant(call.actor, ref)


@opsclaw.route(
    "DELETE",
    "/v1/tenants/{id}",
    summary="Delete a tenant (a tombstone, restorable for 30 days, then purged)",
    ok=Resp(TENANT),
)
async def delete_tenant(call: Call) -> Response:
    tenant = await _tenant(call)
    return json(tenant_record(await tenants.delete_tenant(call.actor, tenant.name)))


@opsclaw.route(
    "POST",
    "/v1/tenants/{id}/restore",
    summary="Restore a deleted tenant within its 30-day window",
    ok=Resp(TENANT),
    body=obj({}),
    body_required=False,
)
async def restore_tenant(call: Call) -> Response:
    tenant = await _tenant(call)
    return json(tenant_record(await tenants.restore_tenant(call.actor, tenant.name)))


@opsclaw.route(
    "GET",
    "/v1/billing/plan",
    summary="The tenant's plan: its monthly budget, spend and status",
    description=(
        "agentplane sells no tiers: `tier` is `self_hosted` and there is no trial; the "
        "tenant's monthly budget is its plan. Platform callers name a `tenant`."
    ),
    ok=Resp(
        record(
            {
                "tenantId": STR,
                "tier": STR,
                "status": STR,
                "trial": record({"active": BOOL, "endsAt": nullable(DATETIME)}),
                "currency": STR,
                "period": STR,
                "monthlyBudgetUsd": nullable(NUM),
                "currentSpendUsd": NUM,
                "alertState": {"type": "string", "enum": ["ok", "warning", "exceeded"]},
            }
        )
    ),
    query=(Param("tenant", STR),),
)
async def billing_plan(call: Call) -> Response:
    budget = await budgets.get_budget(call.actor, BudgetScope.TENANT, call.query.get("tenant"))
    assert budget.tenant_id is not None
    tenant = await tenants.get_tenant_by_id(call.actor, budget.tenant_id)
    limit = budget.monthly_limit_usd
    return json(
        {
            "tenantId": tenant.id,
            "tier": "self_hosted",
            "status": tenant.phase.value,
            "trial": {"active": False, "endsAt": None},
            "currency": "USD",
            "period": budget.window,
            "monthlyBudgetUsd": None if limit is None else float(limit),
            "currentSpendUsd": float(budget.current_spend_usd),
            "alertState": budget.alert_state,
        }
    )
