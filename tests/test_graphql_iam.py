"""The GraphQL paths added for parity with REST: principals, user expiry and revocation,
tokens minted for users, worker queues, usage and server status (schema/iam.py, fleet.py)."""

import asyncio
from datetime import UTC, datetime, timedelta

from agentplane.models import AccessToken, User, WorkerQueue
from tests.support.factories import make_agent, make_tenant, make_token, make_user
from tests.support.graphql import GraphQLClient, error_codes

VIEWER = "{ viewer { kind role } }"
PRINCIPAL = """mutation($e: String!, $t: String, $n: DateTime) {
  createPrincipal(input: {email: $e, role: "operator", tenant: $t, notAfter: $n}) {
    user { id email disabled notAfter roleAssignments { role tenant { name } } }
    token { id role expiresAt ownerUserId }
    plainTextToken
  }
}"""


async def test_a_tenant_admin_creates_expires_and_revokes_a_principal(gql: GraphQLClient) -> None:
    # Given a tenant admin
    acme = await make_tenant("acme")
    admin = await make_token(acme, "tenant_admin")
    # When it creates a principal, then the principal's token works as an operator of acme
    made = (await gql.ok(PRINCIPAL, admin, e="bot@acme.test"))["createPrincipal"]
    assert made["user"]["roleAssignments"] == [{"role": "operator", "tenant": {"name": "acme"}}]
    assert made["token"]["ownerUserId"] == made["user"]["id"]
    bot = made["plainTextToken"]
    assert (await gql.ok(VIEWER, bot))["viewer"] == {"kind": "token", "role": "operator"}
    user_id = made["user"]["id"]
    # When it sets an expiry, then the user's tokens expire no later than that
    when = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    updated = await gql.ok(
        """mutation($id: ID!, $n: DateTime) {
          updateUser(input: {id: $id, notAfter: $n, displayName: "Bot"}) {
            user { displayName notAfter } } }""",
        admin,
        id=user_id,
        n=when.isoformat(),
    )
    assert updated["updateUser"]["user"]["displayName"] == "Bot"
    assert datetime.fromisoformat(updated["updateUser"]["user"]["notAfter"]) == when
    token_row = await AccessToken.get(id=made["token"]["id"])
    assert token_row.expires_at == when
    # When it mints another token for the user, then it expires by then too
    minted = await gql.ok(
        """mutation($u: ID!) { createUserToken(input: {userId: $u, name: "ci"}) {
          token { role expiresAt } plainTextToken } }""",
        admin,
        u=user_id,
    )
    assert minted["createUserToken"]["token"]["role"] == "operator"
    assert datetime.fromisoformat(minted["createUserToken"]["token"]["expiresAt"]) == when
    second = minted["createUserToken"]["plainTextToken"]
    # When it revokes the user, then both tokens stop at once and the user is disabled
    revoked = await gql.ok(
        "mutation($id: ID!) { revokeUser(input: {id: $id}) "
        "{ user { disabled roleAssignments { id } } } }",
        admin,
        id=user_id,
    )
    assert revoked["revokeUser"]["user"] == {"disabled": True, "roleAssignments": []}
    for token in (bot, second):
        assert error_codes(await gql(VIEWER, token)) == ["UNAUTHENTICATED"]


async def test_user_management_errors_carry_stable_codes(gql: GraphQLClient) -> None:
    # Given two tenants, each with an admin, and a user of the second
    acme, other = await make_tenant("acme"), await make_tenant("other")
    admin = await make_token(acme, "tenant_admin")
    stranger = await make_user("s@other.test", "operator", other)
    operator = await make_token(acme, "operator")
    mutation = "mutation($id: ID!) { revokeUser(input: {id: $id}) { user { id } } }"
    # Then another tenant's user answers like a missing one, and nothing changes
    assert error_codes(await gql(mutation, admin, id=stranger.id)) == ["NOT_FOUND"]
    assert error_codes(await gql(mutation, admin, id="usr_" + "x" * 100)) == ["NOT_FOUND"]
    assert not (await User.get(id=stranger.id)).disabled
    # An operator may not manage users; nobody may without a credential
    assert error_codes(await gql(mutation, operator, id=stranger.id)) == ["FORBIDDEN"]
    assert error_codes(await gql(mutation, None, id=stranger.id)) == ["UNAUTHENTICATED"]
    # A time without an offset is refused with the field named
    naive = await gql(
        'mutation($id: ID!) { updateUser(input: {id: $id, notAfter: "2030-01-01T00:00:00"}) '
        "{ user { id } } }",
        await make_token(None, "platform_admin"),
        id=stranger.id,
    )
    assert error_codes(naive) == ["VALIDATION"]
    assert (await User.get(id=stranger.id)).not_after is None
    # A principal with an unknown role is refused, and no user is left behind
    body = await gql(
        'mutation { createPrincipal(input: {email: "x@acme.test", role: "nope"}) { user { id } } }',
        admin,
    )
    assert error_codes(body) in (["VALIDATION"], ["NOT_FOUND"])
    assert not await User.filter(email="x@acme.test").exists()


async def test_reads_of_users_roles_and_personal_tokens(gql: GraphQLClient) -> None:
    acme = await make_tenant("acme")
    admin = await make_token(acme, "tenant_admin")
    member = await make_user("m@acme.test", "viewer", acme)
    # Given the member's own assignment
    found = await gql.ok(
        "query($id: ID!) { user(id: $id) { email roleAssignments { id role } } }",
        admin,
        id=member.id,
    )
    assignment = found["user"]["roleAssignments"][0]
    assert found["user"]["email"] == "m@acme.test" and assignment["role"] == "viewer"
    # Then it reads back by ID, and its role by name
    one = await gql.ok(
        'query($id: ID!) { roleAssignment(id: $id) { role } role(name: "viewer") { name scope } }',
        admin,
        id=assignment["id"],
    )
    assert one["roleAssignment"]["role"] == "viewer"
    assert one["role"]["name"] == "viewer"
    assert error_codes(await gql('{ role(name: "nope") { name } }', admin)) == ["NOT_FOUND"]
    # A token acting for nobody has no `me` and no personal tokens of its own
    assert (await gql.ok("{ me { id } }", admin))["me"] is None
    # A token acting for the member sees the member and its tokens
    platform = await make_token(None, "platform_admin")
    minted = await gql.ok(
        'mutation($u: ID!) { createUserToken(input: {userId: $u, name: "p"}) { plainTextToken } }',
        platform,
        u=member.id,
    )
    mine = minted["createUserToken"]["plainTextToken"]
    seen = await gql.ok(
        "{ me { email } personalTokens(first: 10) { edges { node { name } } } }", mine
    )
    assert seen["me"] == {"email": "m@acme.test"}
    assert [e["node"]["name"] for e in seen["personalTokens"]["edges"]] == ["p"]


QUEUES = """query($after: String) { workerQueues(first: 2, after: $after) {
  edges { cursor node { id name tenant { name } } } pageInfo { hasNextPage endCursor } } }"""


async def test_worker_queues_over_graphql(gql: GraphQLClient) -> None:
    acme = await make_tenant("acme")
    operator = await make_token(acme, "operator")
    create = """mutation($n: String!) { createWorkerQueue(input: {name: $n}) {
      workerQueue { id name heartbeatInterval } } }"""
    # Given three queues made over GraphQL
    made = [(await gql.ok(create, operator, n=f"q{i}"))["createWorkerQueue"] for i in range(3)]
    assert [m["workerQueue"]["heartbeatInterval"] for m in made] == [60, 60, 60]
    # Then they page two at a time, oldest first, and each reads back by ID
    first = (await gql.ok(QUEUES, operator))["workerQueues"]
    assert [e["node"]["name"] for e in first["edges"]] == ["q0", "q1"]
    assert first["pageInfo"]["hasNextPage"] is True
    rest = (await gql.ok(QUEUES, operator, after=first["pageInfo"]["endCursor"]))["workerQueues"]
    assert [e["node"]["name"] for e in rest["edges"]] == ["q2"]
    assert rest["pageInfo"]["hasNextPage"] is False
    queue_id = made[0]["workerQueue"]["id"]
    one = await gql.ok("query($id: ID!) { workerQueue(id: $id) { name } }", operator, id=queue_id)
    assert one["workerQueue"]["name"] == "q0"
    # And bad input has stable codes, changing nothing
    assert error_codes(await gql(create, operator, n="q0")) == ["CONFLICT"]
    assert error_codes(await gql(create, operator, n="Bad Name")) == ["VALIDATION"]
    assert error_codes(await gql(QUEUES, operator, after="bm9wZQ==")) == ["VALIDATION"]
    assert error_codes(await gql('{ workerQueue(id: "nope") { id } }', operator)) == ["NOT_FOUND"]
    assert await WorkerQueue.all().count() == 3
    # When one is deleted, it is gone
    deleted = await gql.ok(
        "mutation($id: ID!) { deleteWorkerQueue(input: {id: $id}) { deletedId } }",
        operator,
        id=queue_id,
    )
    assert deleted["deleteWorkerQueue"]["deletedId"] == queue_id
    assert await WorkerQueue.all().count() == 2


async def test_agent_by_name_checks_usage_and_server_status(gql: GraphQLClient) -> None:
    acme = await make_tenant("acme")
    operator = await make_token(acme, "operator")
    agent = await make_agent(acme, "atlas")
    body = await gql.ok(
        """query($a: ID!) { agentByName(name: "atlas") { id }
          agentPublishChecks(agentId: $a) { id passed severity }
          tenantUsage { tenantId calls costUsd byModel { model } }
          models(enabledOnly: true) { id } }""",
        operator,
        a=agent.id,
    )
    assert body["agentByName"]["id"] == agent.id
    assert body["agentPublishChecks"] and all(
        c["severity"] in ("error", "warning") for c in body["agentPublishChecks"]
    )
    assert body["tenantUsage"] == {"tenantId": acme.id, "calls": 0, "costUsd": 0.0, "byModel": []}
    assert "scripted/echo" in [m["id"] for m in body["models"]]
    assert error_codes(await gql('{ agentByName(name: "nope") { id } }', operator)) == ["NOT_FOUND"]
    # Server status is for platform-scoped callers
    assert error_codes(await gql("{ serverStatus { cpuPercent } }", operator)) == ["FORBIDDEN"]
    platform = await make_token(None, "platform_admin")
    status = await gql.ok("{ serverStatus { memoryTotalBytes activeTenants } }", platform)
    assert status["serverStatus"]["activeTenants"] == 1
    assert status["serverStatus"]["memoryTotalBytes"] > 0
    # A task's usage: tokens of its provider calls
    submitted = await gql.ok(
        'mutation($a: ID!) { submitTask(input: {agentId: $a, query: "hi"}) { task { id } } }',
        operator,
        a=agent.id,
    )
    task_id = submitted["submitTask"]["task"]["id"]
    for _ in range(200):
        task = (
            await gql.ok(
                "query($t: ID!) { task(id: $t) { isTerminal usage { inputTokens outputTokens } } }",
                operator,
                t=task_id,
            )
        )["task"]
        if task["isTerminal"]:
            break
        await asyncio.sleep(0.05)
    assert task["isTerminal"] and task["usage"]["outputTokens"] > 0
