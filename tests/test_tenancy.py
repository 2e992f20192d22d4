"""Tenant lifecycle (update, suspend/resume, delete/restore/purge) and access tokens."""

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from starlette.applications import Starlette

from agentplane.core.config import Settings
from agentplane.http.app import create_app
from agentplane.models import AccessToken, AuditEvent, Task, Tenant
from agentplane.runtime import maintenance
from tests.support.database import truncate_all
from tests.support.factories import make_agent, make_tenant, make_token
from tests.support.graphql import GraphQLClient, error_codes

TASK = "query($id: ID!) { task(id: $id) { status statusReason isTerminal output } }"
SUBMIT = (
    'mutation($a: ID!) { submitTask(input: {agentId: $a, query: "go"}) { task { id status } } }'
)
# One tool call, then an answer: two provider calls, so a pause lands between them.
SCRIPT = {
    "script": [
        {"tool": "calculator", "arguments": {"expression": "6*7"}},
        {"say": "The answer is {last_tool_result}"},
    ]
}


async def wait_status(gql: GraphQLClient, token: str, task_id: str, *statuses: str) -> dict:
    task: dict = {}
    for _ in range(400):
        task = (await gql.ok(TASK, token, id=task_id))["task"]
        if task["status"] in statuses:
            return task
        await asyncio.sleep(0.025)
    raise AssertionError(f"task never reached {statuses}: {task}")


@pytest.fixture
async def slow_gql(settings: Settings) -> AsyncIterator[GraphQLClient]:
    """The app with a slow scripted model, so a test can act while a task runs."""
    application: Starlette = create_app(
        dataclasses.replace(settings, scripted_delay_ms=400), run_worker=True
    )
    await truncate_all(settings.database_url)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield GraphQLClient(client)


async def test_update_tenant(gql: GraphQLClient) -> None:
    await make_tenant("acme")
    admin = await make_token(None, "platform_admin")
    data = await gql.ok(
        'mutation { updateTenant(input: {name: "acme", displayName: "Acme Inc", team: "ml"})'
        " { tenant { name displayName team email } } }",
        admin,
    )
    assert data["updateTenant"]["tenant"] == {
        "name": "acme",
        "displayName": "Acme Inc",
        "team": "ml",
        "email": "",
    }
    bad = await gql(
        'mutation { updateTenant(input: {name: "acme", email: "nope"}) { tenant { id } } }', admin
    )
    assert error_codes(bad) == ["VALIDATION"]
    missing = await gql('mutation { updateTenant(input: {name: "zzz"}) { tenant { id } } }', admin)
    assert error_codes(missing) == ["NOT_FOUND"]


async def test_suspend_pauses_running_tasks_refuses_writes_and_resume_finishes(
    slow_gql: GraphQLClient,
) -> None:
    gql = slow_gql
    # given a running task in tenant acme
    acme = await make_tenant("acme")
    agent = await make_agent(acme, model="scripted/agent", tools=["calculator"], config=SCRIPT)
    admin = await make_token(None, "platform_admin")
    operator = await make_token(acme, "operator")
    task_id = (await gql.ok(SUBMIT, operator, a=agent.id))["submitTask"]["task"]["id"]
    await wait_status(gql, operator, task_id, "RUNNING")

    # when the platform admin suspends the tenant
    suspended = await gql.ok(
        'mutation { suspendTenant(input: {name: "acme"}) { tenant { phase suspendedAt } } }', admin
    )
    assert suspended["suspendTenant"]["tenant"]["phase"] == "SUSPENDED"

    # then the running task pauses at its next provider call, not failed
    paused = await wait_status(gql, operator, task_id, "PAUSED", "COMPLETED", "FAILED")
    assert (paused["status"], paused["statusReason"]) == ("PAUSED", "tenant_suspended")
    # and reads still work, while every write and new task is refused
    assert (await gql.ok("{ agents(first: 100) { edges { node { id } } } }", operator))["agents"][
        "edges"
    ]
    tasks_before = await Task.all().count()
    for document in (
        SUBMIT,
        'mutation { createAgent(input: {name: "x"}) { agent { id } } }',
    ):
        body = (
            await gql(document, operator, a=agent.id)
            if "$a" in document
            else await gql(document, operator)
        )
        assert error_codes(body) == ["TENANT_SUSPENDED"], body
    # a platform admin cannot start a task in it either
    assert error_codes(await gql(SUBMIT, admin, a=agent.id)) == ["TENANT_SUSPENDED"]
    assert await Task.all().count() == tasks_before

    # when it is resumed, the paused task runs to the end
    await gql.ok('mutation { resumeTenant(input: {name: "acme"}) { tenant { phase } } }', admin)
    done = await wait_status(gql, operator, task_id, "COMPLETED", "FAILED")
    assert (done["status"], done["output"]) == ("COMPLETED", "The answer is 42")
    actions = await AuditEvent.filter(tenant_id=acme.id).values_list("action", flat=True)
    assert {"tenant.suspend", "tenant.resume"} <= set(actions)


async def test_delete_stops_tokens_at_once_restore_brings_them_back(gql: GraphQLClient) -> None:
    # given a tenant with a token in use
    acme = await make_tenant("acme")
    admin = await make_token(None, "platform_admin")
    viewer = await make_token(acme, "viewer")
    assert (await gql.ok("{ viewer { role } }", viewer))["viewer"]["role"] == "viewer"

    # when it is deleted, its token stops on the very next request
    deleted = await gql.ok(
        'mutation { deleteTenant(input: {name: "acme"}) { tenant { phase deletedAt } } }', admin
    )
    assert deleted["deleteTenant"]["tenant"]["phase"] == "DELETED"
    assert deleted["deleteTenant"]["tenant"]["deletedAt"] is not None
    assert error_codes(await gql("{ viewer { role } }", viewer)) == ["UNAUTHENTICATED"]
    # and it leaves the tenant list, though the admin can still read the tombstone
    listed = await gql.ok("{ tenants(first: 100) { edges { node { name } } } }", admin)
    assert listed["tenants"]["edges"] == []
    tomb = await gql.ok('{ tenant(name: "acme") { phase } }', admin)
    assert tomb["tenant"]["phase"] == "DELETED"

    # when it is restored within 30 days, the same token works again
    await gql.ok('mutation { restoreTenant(input: {name: "acme"}) { tenant { phase } } }', admin)
    assert (await gql.ok("{ viewer { role } }", viewer))["viewer"]["role"] == "viewer"
    again = await gql('mutation { restoreTenant(input: {name: "acme"}) { tenant { id } } }', admin)
    assert error_codes(again) == ["CONFLICT"]


async def test_purge_after_30_days(gql: GraphQLClient, settings: Settings) -> None:
    # given a tenant deleted 31 days ago and one deleted yesterday
    old, recent = await make_tenant("old"), await make_tenant("recent")
    admin = await make_token(None, "platform_admin")
    await gql.ok('mutation { deleteTenant(input: {name: "old"}) { tenant { id } } }', admin)
    await gql.ok('mutation { deleteTenant(input: {name: "recent"}) { tenant { id } } }', admin)
    now = datetime.now(UTC)
    await Tenant.filter(id=old.id).update(deleted_at=now - timedelta(days=31))
    await Tenant.filter(id=recent.id).update(deleted_at=now - timedelta(days=1))
    # then the old one can no longer be restored
    late = await gql('mutation { restoreTenant(input: {name: "old"}) { tenant { id } } }', admin)
    assert error_codes(late) == ["CONFLICT"]

    # when the periodic job runs
    result = await maintenance.run_once(settings)

    # then only the old one is gone, and the purge is on the audit trail
    assert result["tenants_purged"] == 1
    assert await Tenant.filter(id=old.id).count() == 0
    assert await Tenant.filter(id=recent.id).count() == 1
    assert await AuditEvent.filter(action="tenant.purge", resource="old").count() == 1


async def test_tokens_list_revoke_expiry_last_used(gql: GraphQLClient) -> None:
    acme = await make_tenant("acme")
    admin = await make_token(acme, "tenant_admin")
    created = await gql.ok(
        'mutation { createAccessToken(input: {name: "ci", role: "operator"})'
        " { token { id lastUsedAt createdBy } plainTextToken } }",
        admin,
    )
    token_id = created["createAccessToken"]["token"]["id"]
    plaintext = created["createAccessToken"]["plainTextToken"]
    assert created["createAccessToken"]["token"]["lastUsedAt"] is None
    assert created["createAccessToken"]["token"]["createdBy"].startswith("tok_")

    # a use is recorded as lastUsedAt
    await gql.ok("{ viewer { role } }", plaintext)
    listing = await gql.ok(
        "{ accessTokens(first: 100) { edges { node { id name prefix lastUsedAt revokedAt } } } }",
        admin,
    )
    row = next(e["node"] for e in listing["accessTokens"]["edges"] if e["node"]["id"] == token_id)
    assert row["lastUsedAt"] is not None and row["revokedAt"] is None
    # the listing never carries a plaintext token
    raw = (
        await gql.client.post(
            "/graphql",
            json={"query": "{ accessTokens(first: 100) { edges { node { id name prefix } } } }"},
            headers={"Authorization": f"Bearer {admin}"},
        )
    ).text
    assert plaintext not in raw and plaintext[:12] in raw

    # revoke: the very next request with it is refused
    revoked = await gql.ok(
        "mutation($id: ID!) { revokeAccessToken(input: {id: $id}) { token { revokedAt } } }",
        admin,
        id=token_id,
    )
    assert revoked["revokeAccessToken"]["token"]["revokedAt"] is not None
    assert error_codes(await gql("{ viewer { role } }", plaintext)) == ["UNAUTHENTICATED"]
    assert await AuditEvent.filter(action="token.revoke", resource=token_id).count() == 1

    # expiry: a token past its expiresAt is refused
    other = await make_token(acme, "viewer")
    await AccessToken.filter(prefix=other[:12]).update(
        expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    assert error_codes(await gql("{ viewer { role } }", other)) == ["UNAUTHENTICATED"]
    past = await gql(
        'mutation { createAccessToken(input: {name: "x", role: "viewer",'
        ' expiresAt: "2001-01-01T00:00:00Z"}) { plainTextToken } }',
        admin,
    )
    assert error_codes(past) == ["VALIDATION"]
    # another tenant's token cannot be revoked (answers like a missing one)
    beta = await make_tenant("beta")
    foreign = await make_token(beta, "viewer")
    foreign_id = (await AccessToken.get(prefix=foreign[:12])).id
    body = await gql(
        "mutation($id: ID!) { revokeAccessToken(input: {id: $id}) { token { id } } }",
        admin,
        id=foreign_id,
    )
    assert error_codes(body) == ["NOT_FOUND"]
    assert (await AccessToken.get(id=foreign_id)).revoked_at is None
