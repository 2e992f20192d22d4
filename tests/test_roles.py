"""The role matrix: every role against every guarded operation, allowed or denied, and a
denied call changes nothing."""

from typing import Any

import pytest

from agentplane.models import (
    AccessToken,
    Agent,
    AuditEvent,
    Budget,
    ProviderKey,
    RoleAssignment,
    Task,
    TaskStatus,
    Tenant,
    User,
)
from agentplane.resolvers import audit
from tests.support.factories import make_agent, make_tenant, make_token
from tests.support.graphql import GraphQLClient, error_codes

ROLES = ["platform_admin", "tenant_admin", "operator", "viewer", "billing"]
ALL = set(ROLES)
PA, TA, OP, VI, BI = ROLES

# (operation, GraphQL document, roles allowed). `{n}` makes names unique per call.
MATRIX: list[tuple[str, str, set[str]]] = [
    ("tenants", "{ tenants(first: 100) { edges { node { name } } } }", ALL),
    ("createTenant", 'mutation { createTenant(input: {name: "t-{n}"}) { tenant { id } } }', {PA}),
    (
        "updateTenant",
        'mutation { updateTenant(input: {name: "acme", team: "{n}"}) { tenant { team } } }',
        {PA},
    ),
    ("suspendTenant", 'mutation { suspendTenant(input: {name: "other"}) { tenant { id } } }', {PA}),
    ("accessTokens", "{ accessTokens(first: 100) { edges { node { id } } } }", {PA, TA}),
    (
        "createAccessToken",
        'mutation { createAccessToken(input: {name: "n{n}", tenant: "acme", role: "viewer"})'
        " { plainTextToken } }",
        {PA, TA},
    ),
    (
        "revokeAccessToken",
        "mutation($tok: ID!) { revokeAccessToken(input: {id: $tok}) { token { revokedAt } } }",
        {PA, TA},
    ),
    ("agents", "{ agents(first: 100) { edges { node { id } } } }", {PA, TA, OP, VI}),
    (
        "createAgent",
        'mutation { createAgent(input: {name: "a{n}", tenant: "acme"}) { agent { id } } }',
        {PA, TA, OP},
    ),
    ("tasks", "{ tasks(first: 100) { edges { node { id } } } }", {PA, TA, OP, VI}),
    (
        "submitTask",
        'mutation($agent: ID!) { submitTask(input: {agentId: $agent, query: "hi"})'
        " { task { id } } }",
        {PA, TA, OP},
    ),
    (
        "resumeTask",
        "mutation($paused: ID!) { resumeTask(input: {id: $paused}) { task { status } } }",
        {PA, TA, OP},
    ),
    (
        "cancelTask",
        "mutation($cancel: ID!) { cancelTask(input: {id: $cancel}) { task { status } } }",
        {PA, TA, OP},
    ),
    ("auditEvents", "{ auditEvents(first: 100) { edges { node { id } } } }", {PA, TA, BI}),
    ("budgets", "{ budgets(first: 100) { edges { node { scope } } } }", ALL),
    (
        "budget",
        '{ budget(scope: TENANT, tenant: "acme") { monthlyLimitUsd currentSpendUsd } }',
        ALL,
    ),
    (
        "setBudget",
        'mutation { setBudget(input: {scope: TENANT, tenant: "acme", monthlyLimitUsd: 5})'
        " { budget { monthlyLimitUsd } } }",
        {PA, TA, BI},
    ),
    (
        "removeBudget",
        'mutation { removeBudget(input: {scope: AGENT, agentId: "{agent}"}) { budget { scope } } }',
        {PA, TA, BI},
    ),
    ("tokenUsage", "{ tokenUsage(first: 100) { edges { node { id } } } }", ALL),
    ("providerKeys", '{ providerKeys(tenant: "acme") { provider configured } }', {PA, TA}),
    (
        "setProviderKey",
        'mutation { setProviderKey(input: {provider: "openai", apiKey: "sk-{n}", tenant: "acme"})'
        " { providerKey { configured } } }",
        {PA, TA},
    ),
    ("roleAssignments", "{ roleAssignments { id role } }", {PA, TA}),
    ("users", "{ users { id email } }", {PA, TA}),
    (
        "createUser",
        'mutation { createUser(input: {email: "u{n}@acme.io", password: "long enough pw",'
        ' role: "operator", tenant: "acme"}) { user { id } } }',
        {PA, TA},
    ),
    (
        "assignRole",
        'mutation($user: ID!) { assignRole(input: {userId: $user, role: "viewer", tenant: "acme"})'
        " { assignment { role } } }",
        {PA, TA},
    ),
]


async def snapshot() -> dict[str, Any]:
    """Everything a guarded operation could change (the audit trail aside)."""
    return {
        "tenants": sorted(await Tenant.all().values_list("name", "team", "phase", "display_name")),
        "tokens": sorted(await AccessToken.all().values_list("id", "revoked_at")),
        "agents": await Agent.all().count(),
        "tasks": sorted(await Task.all().values_list("id", "status")),
        "budgets": sorted(await Budget.all().values_list("scope_key", "limit_units")),
        "keys": sorted(await ProviderKey.all().values_list("provider", "ciphertext")),
        "assignments": sorted(await RoleAssignment.all().values_list("user_id", "role")),
        "users": sorted(await User.all().values_list("email", flat=True)),
    }


async def paused_task(tenant: Tenant, agent: Agent) -> str:
    """A task that is paused from its first moment (never queued: no worker may take it)."""
    task = await Task.create(
        tenant_id=tenant.id,
        agent_id=agent.id,
        query="hold",
        status=TaskStatus.PAUSED,
        created_by="test",
    )
    return task.id


@pytest.mark.parametrize("role", ROLES)
async def test_role_matrix(gql: GraphQLClient, role: str) -> None:
    # given a tenant with an agent, a member to promote, targets for every write
    acme = await make_tenant("acme")
    await make_tenant("other")
    agent = await make_agent(acme, max_steps=1)
    # Held from the start, so the worker never runs these tasks under the matrix.
    await Agent.filter(id=agent.id).update(state="paused")
    user = await User.create(email="member@acme.io")
    await Budget.create(
        scope="agent",
        scope_key=f"agent:{agent.id}",
        tenant_id=acme.id,
        agent_id=agent.id,
        limit_units=10,
        period="2000-01",
    )
    token = await make_token(None if role == PA else acme, role)

    for n, (operation, document, allowed) in enumerate(MATRIX):
        await Agent.filter(id=agent.id).update(state="active")
        victim = (
            await AccessToken.create(
                tenant_id=acme.id, name="victim", role="viewer", token_hash=f"h{n}", prefix="agp_x"
            )
        ).id
        variables = {
            "tok": victim,
            "agent": agent.id,
            "paused": await paused_task(acme, agent),
            "cancel": await paused_task(acme, agent),
            "user": user.id,
        }
        query = document.replace("{n}", str(n)).replace("{agent}", agent.id)
        used = {k: v for k, v in variables.items() if f"${k}" in query}
        before = await snapshot()
        denials = await AuditEvent.filter(outcome="denied").count()
        # when the role calls the operation
        body = await gql(query, token, **used)
        # then it is allowed exactly when the matrix says so
        codes = error_codes(body)
        if role in allowed:
            assert codes == [], f"{role} should be allowed {operation}: {body}"
        else:
            assert codes == ["FORBIDDEN"], f"{role} should be denied {operation}: {body}"
            assert await snapshot() == before, f"denied {operation} changed something"
            # and the denial is on the audit trail
            await audit.flush()
            recorded = await AuditEvent.filter(outcome="denied").count()
            assert recorded == denials + 1, (operation, recorded - denials)
