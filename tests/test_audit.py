"""The audit trail: mutations and security events recorded with actor, tenant, action,
resource, outcome and request id; read newest first with keyset cursors."""

from typing import Any

from agentplane.models import AuditEvent, ProviderKey
from agentplane.resolvers.provider_keys import tenant_api_key
from tests.support.factories import make_tenant, make_token
from tests.support.graphql import GraphQLClient, error_codes

EVENTS = """
query($first: Int, $after: String, $tenant: String, $action: String) {
  auditEvents(first: $first, after: $after, tenant: $tenant, action: $action) {
    edges { cursor node { id actor actorKind role tenantId action resource outcome requestId } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


async def test_mutations_are_recorded_and_paged_with_keyset_cursors(gql: GraphQLClient) -> None:
    # given a platform admin who creates three tenants, one call with a known request id
    admin = await make_token(None, "platform_admin")
    for name in ("t1", "t2"):
        await gql.ok(
            f'mutation {{ createTenant(input: {{name: "{name}"}}) {{ tenant {{ id }} }} }}', admin
        )
    response = await gql.client.post(
        "/graphql",
        json={"query": 'mutation { createTenant(input: {name: "t3"}) { tenant { id } } }'},
        headers={"Authorization": f"Bearer {admin}", "X-Request-Id": "req-from-client-42"},
    )
    assert response.headers["x-request-id"] == "req-from-client-42"
    # and a refused one
    body = await gql('mutation { createTenant(input: {name: "t1"}) { tenant { id } } }', admin)
    assert error_codes(body) == ["CONFLICT"]

    # when the trail is read two at a time
    seen: list[dict[str, Any]] = []
    after = None
    while True:
        page = (await gql.ok(EVENTS, admin, first=2, after=after, action="tenant.create"))[
            "auditEvents"
        ]
        seen += [e["node"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]

    # then every call is there once, newest first, with who, what and how it ended
    assert [(e["resource"], e["outcome"]) for e in seen] == [
        ("t1", "failure"),
        ("t3", "success"),
        ("t2", "success"),
        ("t1", "success"),
    ]
    assert len({e["id"] for e in seen}) == 4
    assert {(e["actorKind"], e["role"]) for e in seen} == {("token", "platform_admin")}
    assert seen[1]["requestId"] == "req-from-client-42"
    assert all(e["requestId"] for e in seen)
    assert seen[1]["tenantId"] is not None  # the created tenant's own trail
    bad = await gql(EVENTS, admin, first=2, after="not-a-cursor")
    assert error_codes(bad) == ["VALIDATION"]


async def test_tenants_see_only_their_own_trail(gql: GraphQLClient) -> None:
    acme, beta = await make_tenant("acme"), await make_tenant("beta")
    acme_admin = await make_token(acme, "tenant_admin")
    beta_admin = await make_token(beta, "tenant_admin")
    await gql.ok('mutation { createAgent(input: {name: "a"}) { agent { id } } }', acme_admin)
    await gql.ok('mutation { createAgent(input: {name: "b"}) { agent { id } } }', beta_admin)
    mine = (await gql.ok(EVENTS, acme_admin, first=100))["auditEvents"]["edges"]
    assert [(e["node"]["action"], e["node"]["tenantId"]) for e in mine] == [
        ("agent.create", acme.id)
    ]
    assert error_codes(await gql(EVENTS, acme_admin, first=9, tenant="beta")) == ["NOT_FOUND"]
    filtered = (await gql.ok(EVENTS, acme_admin, first=100, tenant="acme"))["auditEvents"]["edges"]
    assert len(filtered) == 1


async def test_provider_keys_are_encrypted_and_never_returned(gql: GraphQLClient) -> None:
    acme = await make_tenant("acme")
    admin = await make_token(acme, "tenant_admin")
    secret = "sk-live-abcdef0123456789"
    set_key = (
        'mutation($k: String!) { setProviderKey(input: {provider: "openai", apiKey: $k})'
        " { providerKey { provider configured updatedAt } } }"
    )
    data = await gql.ok(set_key, admin, k=secret)
    status = data["setProviderKey"]["providerKey"]
    assert status["provider"] == "openai" and status["configured"] is True
    assert status["updatedAt"] is not None
    # at rest it is ciphertext, not the key
    row = await ProviderKey.get(tenant_id=acme.id, provider="openai")
    assert secret not in row.ciphertext and row.ciphertext.startswith("gAAAA")
    # reads give status only; the key appears nowhere, not even in the audit trail
    listed = await gql.client.post(
        "/graphql",
        json={"query": "{ providerKeys { provider configured updatedAt } }"},
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert listed.json()["data"]["providerKeys"][0]["configured"] is True
    assert secret not in listed.text
    trail = await AuditEvent.filter(action="provider_key.set").values_list("details", "resource")
    assert secret not in str(trail)
    assert await tenant_api_key(acme.id, "openai") == secret
    # replacing it keeps one row; deleting it leaves none
    await gql.ok(set_key, admin, k="sk-second")
    assert await ProviderKey.filter(tenant_id=acme.id).count() == 1
    deleted = await gql.ok(
        'mutation { deleteProviderKey(input: {provider: "openai"})'
        " { providerKey { configured } } }",
        admin,
    )
    assert deleted["deleteProviderKey"]["providerKey"]["configured"] is False
    assert await ProviderKey.filter(tenant_id=acme.id).count() == 0
    bad = await gql(set_key.replace('"openai"', '"Not A Provider!"'), admin, k="x")
    assert error_codes(bad) == ["VALIDATION"]


async def test_a_mutation_without_its_own_record_is_still_audited(services: object) -> None:
    import strawberry

    from agentplane.core.errors import Forbidden
    from agentplane.resolvers.auth import Actor
    from agentplane.schema.audit_extension import AuditMutations
    from agentplane.schema.context import Context

    @strawberry.type
    class Q:
        ok: bool = True

    @strawberry.type
    class M:
        @strawberry.mutation
        async def frobnicate(self) -> bool:  # a mutation someone forgot to audit
            return True

        @strawberry.mutation
        async def refuse(self) -> bool:
            raise Forbidden("no")

    probe = strawberry.Schema(query=Q, mutation=M, extensions=[AuditMutations])
    context = Context(request=None)
    context.set_actor(Actor(kind="token", role="operator", tenant_id=None, token_id="tok_t"))
    assert not (await probe.execute("mutation { frobnicate }", context_value=context)).errors
    assert (await probe.execute("mutation { refuse }", context_value=context)).errors
    await probe.execute("{ ok }", context_value=context)
    rows = await AuditEvent.all().order_by("id").values_list("action", "outcome", "actor")
    assert rows == [
        ("graphql.frobnicate", "success", "tok_t"),
        ("graphql.refuse", "denied", "tok_t"),
    ]


async def test_audited_mutations_are_not_recorded_twice(gql: GraphQLClient) -> None:
    admin = await make_token(None, "platform_admin")
    await gql.ok('mutation { createTenant(input: {name: "one"}) { tenant { id } } }', admin)
    assert await AuditEvent.all().values_list("action", flat=True) == ["tenant.create"]
