"""The token -> Actor cache: a hit skips the database, and whatever changes what a token
authenticates as reaches a cached token on the very next request, in this process and
(PostgreSQL + Redis) on another API process."""

import asyncio
import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import redis
from tortoise.connection import get_connection

from agentplane.core.config import Settings
from agentplane.models import AccessToken
from agentplane.resolvers import users
from agentplane.resolvers.auth import Actor, authenticate
from agentplane.resolvers.tokens import mint_token
from agentplane.subscriptions.broker import AUTH_GENERATION_KEY
from tests.support.factories import make_agent, make_tenant, make_token, make_user
from tests.support.graphql import GraphQLClient, error_codes
from tests.support.server import LiveServer, live_server

PLATFORM = Actor(kind="token", role="platform_admin", tenant_id=None)
REVOKE = "mutation($id: ID!) { revokeAccessToken(input: {id: $id}) { token { revokedAt } } }"
AGENTS = "{ agents(first: 5) { edges { node { name } } } }"


async def token_id(plaintext: str) -> str:
    return (await AccessToken.get(prefix=plaintext[:12])).id


async def count_statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    client_class = type(get_connection("default"))
    for name in ("execute_query", "execute_query_dict"):
        original = getattr(client_class, name)

        def counting(self, query, *args, __original=original, **kwargs):  # type: ignore[no-untyped-def]
            seen.append(query)
            return __original(self, query, *args, **kwargs)

        monkeypatch.setattr(client_class, name, counting)
    return seen


async def test_a_cached_token_skips_the_lookup_and_is_refused_once_revoked(
    gql: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a token that has been used once (its Actor is cached)
    acme = await make_tenant("acme")
    await make_agent(acme)
    viewer = await make_token(acme, "viewer")
    admin = await make_token(acme, "tenant_admin")
    await gql.ok(AGENTS, viewer)
    statements = await count_statements(monkeypatch)
    # when it is used again, no access_token row is read
    await gql.ok(AGENTS, viewer)
    assert not [s for s in statements if "access_token" in s], statements
    # when it is revoked
    await gql.ok(REVOKE, admin, id=await token_id(viewer))
    # then the very next request with it is refused
    body = await gql(AGENTS, viewer)
    assert error_codes(body) == ["UNAUTHENTICATED"] and body["data"] is None


async def test_suspending_a_tenant_reaches_its_cached_tokens(gql: GraphQLClient) -> None:
    # given an operator's token, cached, that may submit tasks
    acme = await make_tenant("acme")
    agent = await make_agent(acme)
    operator = await make_token(acme, "operator")
    root = await make_token(None, "platform_admin")
    submit = 'mutation($a: ID!) { submitTask(input: {agentId: $a, query: "hi"}) { task { id } } }'
    await gql.ok(submit, operator, a=agent.id)
    # when the tenant is suspended
    await gql.ok('mutation { suspendTenant(input: {name: "acme"}) { tenant { name } } }', root)
    # then the token's Actor carries the new phase, and it can no longer write
    actor = await authenticate(operator, None)
    assert actor is not None and actor.tenant_phase == "suspended"
    assert error_codes(await gql(submit, operator, a=agent.id)) == ["TENANT_SUSPENDED"]
    # and when the tenant is deleted it no longer authenticates at all
    await gql.ok('mutation { deleteTenant(input: {name: "acme"}) { tenant { name } } }', root)
    assert error_codes(await gql(AGENTS, operator)) == ["UNAUTHENTICATED"]


async def test_lowering_a_users_role_and_expiry_reach_their_cached_token(
    gql: GraphQLClient,
) -> None:
    # given a token acting for an operator, cached
    acme = await make_tenant("acme")
    agent = await make_agent(acme)
    bob = await make_user("bob@acme.test", "operator", acme)
    _, pat = await mint_token(tenant_id=acme.id, role="operator", name="bob", owner_user_id=bob.id)
    submit = 'mutation($a: ID!) { submitTask(input: {agentId: $a, query: "hi"}) { task { id } } }'
    await gql.ok(submit, pat, a=agent.id)
    # when bob's role is lowered to viewer
    root = await make_token(None, "platform_admin")
    lower = (
        'mutation($u: ID!) { assignRole(input: {userId: $u, role: "viewer", tenant: "acme"})'
        " { assignment { role } } }"
    )
    await gql.ok(lower, root, u=bob.id)
    # then the cached token can no longer write, but still reads
    assert error_codes(await gql(submit, pat, a=agent.id)) == ["FORBIDDEN"]
    await gql.ok(AGENTS, pat)
    # and when bob's account gets an end a second away, the cached token ends with it
    await users.update_user(PLATFORM, bob.id, not_after=datetime.now(UTC) + timedelta(seconds=1))
    await gql.ok(AGENTS, pat)  # cached again, with the new expiry
    await asyncio.sleep(1.1)
    assert error_codes(await gql(AGENTS, pat)) == ["UNAUTHENTICATED"]


multi_process = pytest.mark.skipif(
    not (
        os.environ.get("AGENTPLANE_DATABASE_URL", "").startswith("postgres")
        and os.environ.get("AGENTPLANE_REDIS_URL")
    ),
    reason="two API processes share state only through PostgreSQL and Redis",
)


def post(server: LiveServer, token: str, query: str, **variables: object) -> dict:  # type: ignore[type-arg]
    response = httpx.post(
        server.base_url + "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    body: dict = response.json()  # type: ignore[type-arg]
    return body


@multi_process
async def test_revoking_on_one_process_refuses_the_cached_token_on_another_at_once(
    services: Settings, database_url: str, workdir: Path
) -> None:
    acme = await make_tenant("acme")
    await make_agent(acme)
    admin = await make_token(acme, "tenant_admin")
    root = "agp_admin_" + secrets.token_urlsafe(24)
    with (
        live_server(database_url, workdir, "--no-worker", admin_token=root) as a,
        live_server(database_url, workdir, "--no-worker", admin_token=root) as b,
    ):
        for _ in range(20):  # the window, if there were one, is short: try it many times
            # given a token cached on process B
            viewer = await make_token(acme, "viewer")
            for _ in range(2):
                assert not post(b, viewer, AGENTS).get("errors")
            # when process A revokes it
            revoked = post(a, admin, REVOKE, id=await token_id(viewer))
            assert revoked["data"]["revokeAccessToken"]["token"]["revokedAt"]
            # then B refuses it on the very next request
            assert error_codes(post(b, viewer, AGENTS)) == ["UNAUTHENTICATED"]


@multi_process
async def test_a_lost_broker_message_does_not_keep_a_revoked_token_alive(
    services: Settings, database_url: str, workdir: Path
) -> None:
    # given a token cached on a server process
    acme = await make_tenant("acme")
    await make_agent(acme)
    viewer = await make_token(acme, "viewer")
    with live_server(database_url, workdir, "--no-worker") as server:
        assert not post(server, viewer, AGENTS).get("errors")
        assert not post(server, viewer, AGENTS).get("errors")
        # when it is revoked by a writer whose pub/sub message never arrives: only the
        # commit and the generation bump happen
        await AccessToken.filter(id=await token_id(viewer)).update(revoked_at=datetime.now(UTC))
        client = redis.Redis.from_url(os.environ["AGENTPLANE_REDIS_URL"])
        try:
            client.incr(AUTH_GENERATION_KEY)
        finally:
            client.close()
        # then the server refuses it on the next request all the same
        assert error_codes(post(server, viewer, AGENTS)) == ["UNAUTHENTICATED"]


async def test_an_entry_refilled_before_the_revocation_commits_is_dead_after_it(
    gql: GraphQLClient,
) -> None:
    # given a revocation under way inside its transaction (as @audited runs it)
    from agentplane.core.post_commit import atomic
    from agentplane.resolvers import actor_cache

    acme = await make_tenant("acme")
    viewer = Actor(kind="token", role="viewer", tenant_id=acme.id, token_id="tok_x")
    async with atomic():
        await actor_cache.invalidate("token", "tok_x")
        # when another request refills the cache from the rows not yet committed
        actor_cache.store("digest-x", viewer, None, await actor_cache.generation())
        assert await actor_cache.lookup("digest-x") is viewer
    # then once the revocation commits, that entry is never served
    assert await actor_cache.lookup("digest-x") is None
