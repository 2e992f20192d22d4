"""The role matrix, walked operation by operation: every denied call is FORBIDDEN and
changes nothing; every allowed call succeeds."""

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.applications import Starlette

from agentplane.core.config import Settings
from agentplane.http.app import create_app
from agentplane.models import AccessToken, Agent, Step, Task, TaskStatus, Tenant
from agentplane.resolvers import actor_cache, traces
from agentplane.resolvers.permissions import ROLES
from tests.support.database import truncate_all
from tests.support.factories import make_agent, make_tenant, make_token
from tests.support.graphql import GraphQLClient, error_codes


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    """The app without its in-process worker: a queued task stays queued until cancelled."""
    await truncate_all(settings.database_url)
    application = create_app(settings, run_worker=False)
    async with application.router.lifespan_context(application):
        yield application


@dataclass
class Fixture:
    tenant: Tenant
    agent: Agent
    task: Task


@pytest.fixture
async def acme(app: Starlette) -> Fixture:
    tenant = await make_tenant("acme")
    agent = await make_agent(tenant)
    task = await traces.create_task(
        tenant_id=tenant.id, agent_id=agent.id, query="q", metadata={}, created_by="test"
    )
    return Fixture(tenant=tenant, agent=agent, task=task)


async def token_for(role: str, tenant: Tenant) -> str:
    return await make_token(None if role == "platform_admin" else tenant, role)


async def task_state(task_id: str) -> tuple[Any, ...]:
    task = await Task.get(id=task_id)
    return task.status, task.last_seq, task.cancel_requested, await Step.all().count()


@dataclass(frozen=True)
class Operation:
    query: str
    field: str
    # What the operation may change: compared before and after every call.
    state: Callable[[Fixture], Awaitable[Any]]

    def variables(self, f: Fixture) -> dict[str, Any]:
        candidates = {"agent": f.agent.id, "task": f.task.id}
        return {name: value for name, value in candidates.items() if f"${name}:" in self.query}


async def tenant_rows(_: Fixture) -> Any:
    return await Tenant.all().count()


async def token_rows(_: Fixture) -> Any:
    return await AccessToken.all().count()


async def agent_rows(_: Fixture) -> Any:
    return await Agent.all().count()


async def task_rows(_: Fixture) -> Any:
    return await Task.all().count(), await Step.all().count()


async def cancelled(f: Fixture) -> Any:
    return await task_state(f.task.id)


async def everything(_: Fixture) -> Any:
    return [await m.all().count() for m in (Tenant, AccessToken, Agent, Task, Step)]


OPERATIONS: dict[str, Operation] = {
    "createTenant": Operation(
        'mutation { createTenant(input: {name: "newco"}) { tenant { id } } }',
        "createTenant",
        tenant_rows,
    ),
    "createAccessToken": Operation(
        'mutation { createAccessToken(input: {name: "t", tenant: "acme", role: "viewer"})'
        " { plainTextToken } }",
        "createAccessToken",
        token_rows,
    ),
    "createAgent": Operation(
        'mutation { createAgent(input: {name: "new", tenant: "acme"}) { agent { id } } }',
        "createAgent",
        agent_rows,
    ),
    "submitTask": Operation(
        'mutation($agent: ID!) { submitTask(input: {agentId: $agent, query: "hi"})'
        " { task { id } } }",
        "submitTask",
        task_rows,
    ),
    "cancelTask": Operation(
        "mutation($task: ID!) { cancelTask(input: {id: $task}) { task { status } } }",
        "cancelTask",
        cancelled,
    ),
    "tenants": Operation(
        "{ tenants(first: 100) { edges { node { id } } } }", "tenants", everything
    ),
    "agents": Operation("{ agents(first: 100) { edges { node { id } } } }", "agents", everything),
    "tasks": Operation("{ tasks(first: 100) { edges { node { id } } } }", "tasks", everything),
    "accessTokens": Operation(
        "{ accessTokens(first: 100) { edges { node { id } } } }", "accessTokens", everything
    ),
}

READS = {"tenants", "agents", "tasks"}
# The matrix as permissions.py defines it, written out so that a change there shows up here.
ALLOWED: dict[str, set[str]] = {
    "platform_admin": set(OPERATIONS),
    "tenant_admin": set(OPERATIONS) - {"createTenant"},
    "operator": READS | {"createAgent", "submitTask", "cancelTask"},
    "viewer": READS,
    "billing": {"tenants"},  # budgets, usage and audit: see test_roles.py
}
MATRIX = [(role, op) for role in ALLOWED for op in OPERATIONS]


def allowed_effect(op: str, before: Any) -> Any:
    """The state after an allowed call: one new row; a cancelled task with one more step."""
    match op:
        case "createTenant" | "createAccessToken" | "createAgent":
            return before + 1
        case "submitTask":  # the task and its first STATUS_CHANGE step
            return before[0] + 1, before[1] + 1
        case "cancelTask":
            status, last_seq, cancel_requested, steps = before
            assert (status, last_seq, cancel_requested) == (TaskStatus.QUEUED, 1, False)
            return TaskStatus.CANCELLED, 2, False, steps + 1
    return before  # reads change nothing


def test_the_matrix_covers_every_role() -> None:
    assert set(ROLES) == set(ALLOWED)


@pytest.mark.parametrize(("role", "op"), MATRIX, ids=[f"{r}-{o}" for r, o in MATRIX])
async def test_role_matrix(gql: GraphQLClient, acme: Fixture, role: str, op: str) -> None:
    # given a caller with `role` and the state the operation could change
    operation = OPERATIONS[op]
    token = await token_for(role, acme.tenant)
    before = await operation.state(acme)
    # when it calls the operation
    body = await gql(operation.query, token, **operation.variables(acme))
    after = await operation.state(acme)
    # then it is allowed or denied exactly as the matrix says
    if op in ALLOWED[role]:
        assert not body.get("errors"), body["errors"]
        assert body["data"][operation.field] is not None
        assert after == allowed_effect(op, before)
        if op == "cancelTask":
            assert body["data"]["cancelTask"]["task"] == {"status": "CANCELLED"}
    else:
        assert error_codes(body) == ["FORBIDDEN"], body
        assert body["errors"][0]["path"] == [operation.field]
        assert body["data"] is None
        assert after == before  # a denied call changed nothing
        if op == "cancelTask":
            assert after[0] == TaskStatus.QUEUED


@pytest.mark.parametrize("op", list(OPERATIONS))
async def test_anonymous_callers_are_unauthenticated(
    gql: GraphQLClient, acme: Fixture, op: str
) -> None:
    operation = OPERATIONS[op]
    before = await everything(acme), await task_state(acme.task.id)
    body = await gql(operation.query, None, **operation.variables(acme))
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert body["data"] is None
    assert (await everything(acme), await task_state(acme.task.id)) == before


MINT = (
    "mutation($role: String!, $tenant: String, $expiresAt: DateTime) {"
    ' createAccessToken(input: {name: "t", role: $role, tenant: $tenant, expiresAt: $expiresAt})'
    " { token { id role expiresAt } plainTextToken } }"
)


async def test_tenant_admin_cannot_mint_a_platform_admin_token(
    gql: GraphQLClient, acme: Fixture
) -> None:
    token = await make_token(acme.tenant, "tenant_admin")
    before = await AccessToken.all().count()
    for tenant in (None, "acme"):
        body = await gql(MINT, token, role="platform_admin", tenant=tenant)
        assert error_codes(body) == ["FORBIDDEN"], body
        assert body["data"] is None
    assert await AccessToken.all().count() == before
    assert await AccessToken.filter(role="platform_admin").count() == 0


async def test_platform_admin_can_mint_a_platform_admin_token(
    gql: GraphQLClient, acme: Fixture
) -> None:
    token = await make_token(None, "platform_admin")
    data = await gql.ok(MINT, token, role="platform_admin")
    minted = data["createAccessToken"]["plainTextToken"]
    viewer = await gql.ok("{ viewer { role tenant { id } } }", minted)
    assert viewer["viewer"] == {"role": "platform_admin", "tenant": None}


@pytest.mark.parametrize("role", ["platform_admin", "tenant_admin"])
async def test_unknown_role_is_a_validation_error(
    gql: GraphQLClient, acme: Fixture, role: str
) -> None:
    token = await token_for(role, acme.tenant)
    before = await AccessToken.all().count()
    body = await gql(MINT, token, role="superuser", tenant="acme")
    assert error_codes(body) == ["VALIDATION"], body
    assert without_request_id(body["errors"][0]["extensions"]) == {
        "code": "VALIDATION",
        "field": "role",
    }
    assert await AccessToken.all().count() == before


@pytest.mark.parametrize(
    "expires_at",
    [
        "2000-01-01T00:00:00+00:00",
        (datetime.now(UTC) - timedelta(seconds=5)).isoformat(),
        "2000-01-01T00:00:00",  # no offset: a validation error, not a crash
        "2999-01-01T00:00:00",  # no offset is ambiguous for an expiry, even in the future
    ],
)
async def test_expiry_in_the_past_or_without_offset_is_a_validation_error(
    gql: GraphQLClient, acme: Fixture, expires_at: str
) -> None:
    token = await make_token(acme.tenant, "tenant_admin")
    before = await AccessToken.all().count()
    body = await gql(MINT, token, role="viewer", expiresAt=expires_at)
    assert error_codes(body) == ["VALIDATION"], body
    assert without_request_id(body["errors"][0]["extensions"]) == {
        "code": "VALIDATION",
        "field": "expiresAt",
    }
    assert await AccessToken.all().count() == before


async def test_expiry_in_the_future_is_accepted(gql: GraphQLClient, acme: Fixture) -> None:
    token = await make_token(acme.tenant, "tenant_admin")
    expires_at = datetime.now(UTC) + timedelta(days=1)
    data = await gql.ok(MINT, token, role="viewer", expiresAt=expires_at.isoformat())
    minted = data["createAccessToken"]
    assert datetime.fromisoformat(minted["token"]["expiresAt"]) == expires_at
    assert (await gql.ok("{ viewer { role } }", minted["plainTextToken"]))["viewer"] == {
        "role": "viewer"
    }


AGENTS = "{ agents(first: 100) { edges { node { id } } } }"


@pytest.mark.parametrize(
    "change",
    [
        {"revoked_at": datetime.now(UTC) - timedelta(seconds=1)},
        {"expires_at": datetime.now(UTC) - timedelta(seconds=1)},
        {"expires_at": datetime.now(UTC) - timedelta(days=365)},
    ],
    ids=["revoked", "just-expired", "long-expired"],
)
@pytest.mark.parametrize("role", [r for r in ALLOWED if "agents" in ALLOWED[r]])
async def test_revoked_or_expired_tokens_are_unauthenticated(
    gql: GraphQLClient, acme: Fixture, role: str, change: dict[str, datetime]
) -> None:
    # given a token that worked
    token = await token_for(role, acme.tenant)
    assert (await gql.ok(AGENTS, token))["agents"]["edges"] == [{"node": {"id": acme.agent.id}}]
    # when its row is revoked or expires
    row = await AccessToken.get(role=role)
    await AccessToken.filter(id=row.id).update(**change)
    await actor_cache.invalidate("token", row.id)  # as the app's own writers of a token do
    # then every call with it is UNAUTHENTICATED, reads and writes alike
    before = await everything(acme)
    body = await gql(AGENTS, token)
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert body["data"] is None
    body = await gql(OPERATIONS["createAgent"].query, token)
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert await everything(acme) == before


def without_request_id(extensions: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in extensions.items() if k != "requestId"}
