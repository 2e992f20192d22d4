"""The OpenCrane dialect (`/api/v1`): tenants, access tokens, token usage, over HTTP
with real tokens, and parity with GraphQL."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentplane.core import secretbox
from agentplane.models import AccessToken, Tenant, TenantPhase
from agentplane.resolvers import audit
from tests.support.factories import make_agent, make_tenant, make_token
from tests.support.graphql import GraphQLClient
from tests.support.rest import wait_terminal


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and isinstance(body["error"], str), body
    assert "Traceback" not in response.text


async def test_token_usage_lists_the_callers_usage_records(client: httpx.AsyncClient) -> None:
    acme, other = await make_tenant("acme"), await make_tenant("other")
    token = await make_token(acme, "viewer")
    admin = await make_token(None, "platform_admin")
    for tenant, query in ((acme, "first"), (acme, "second run"), (other, "theirs")):
        agent = await make_agent(tenant, f"echo-{query.split()[0]}")
        operator = await make_token(tenant, "operator")
        submitted = await client.post(
            "/api/runtime/tasks",
            headers={"Authorization": f"Bearer {operator}"},
            json={"agent_id": agent.id, "query": query},
        )
        await wait_terminal(submitted.json()["id"])

    mine = await client.get("/api/v1/token-usage", headers={"Authorization": f"Bearer {token}"})
    assert mine.status_code == 200
    rows = mine.json()
    assert [r["tenant"] for r in rows] == ["acme", "acme"]
    assert rows[0]["recordedAt"] >= rows[1]["recordedAt"]  # newest first
    assert set(rows[0]) == {
        "tenant",
        "model",
        "inputTokens",
        "outputTokens",
        "totalCostUsd",
        "recordedAt",
    }
    assert rows[0]["outputTokens"] == 2 and rows[1]["outputTokens"] == 1

    everyone = await client.get("/api/v1/token-usage", headers={"Authorization": f"Bearer {admin}"})
    assert sorted(r["tenant"] for r in everyone.json()) == ["acme", "acme", "other"]
    one = await client.get(
        "/api/v1/token-usage?tenant=other&limit=1", headers={"Authorization": f"Bearer {admin}"}
    )
    assert [r["tenant"] for r in one.json()] == ["other"]

    for url, status, code in [
        ("/api/v1/token-usage?tenant=other", 404, "not_found"),
        ("/api/v1/token-usage?limit=0", 400, "invalid_request"),
    ]:
        response = await client.get(url, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == status
        assert response.json()["code"] == code and isinstance(response.json()["error"], str)
    anonymous = await client.get("/api/v1/token-usage")
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "unauthorized"


TENANT_KEYS = {"name", "displayName", "email", "team", "phase", "createdAt"}


async def test_tenant_lifecycle(client: httpx.AsyncClient) -> None:
    admin = _auth(await make_token(None, "platform_admin"))
    created = await client.post(
        "/api/v1/tenants",
        headers=admin,
        json={
            "name": "acme",
            "displayName": "Acme Inc",
            "email": "ops@acme.test",
            "team": "platform",
            "resources": {},
            "skillAllowlist": ["x"],
        },
    )
    assert created.status_code == 201, created.text
    assert created.json() == {"name": "acme", "status": "active"}

    got = await client.get("/api/v1/tenants/acme", headers=admin)
    assert got.status_code == 200
    assert set(got.json()) == TENANT_KEYS
    assert got.json()["displayName"] == "Acme Inc" and got.json()["phase"] == "active"

    updated = await client.put(
        "/api/v1/tenants/acme", headers=admin, json={"displayName": "Acme", "team": "infra"}
    )
    assert updated.json() == {"name": "acme", "status": "active"}
    row = await Tenant.get(name="acme")
    assert (row.display_name, row.email, row.team) == ("Acme", "ops@acme.test", "infra")

    suspended = await client.post("/api/v1/tenants/acme/suspend", headers=admin)
    assert suspended.json() == {"name": "acme", "status": "suspended"}
    assert (await Tenant.get(name="acme")).phase == TenantPhase.SUSPENDED
    resumed = await client.post("/api/v1/tenants/acme/resume", headers=admin)
    assert resumed.json() == {"name": "acme", "status": "active"}
    again = await client.post("/api/v1/tenants/acme/resume", headers=admin)
    assert again.json() == {"name": "acme", "status": "active"}  # idempotent

    await client.post("/api/v1/tenants", headers=admin, json={"name": "beta"})
    listed = await client.get("/api/v1/tenants", headers=admin)
    assert [t["name"] for t in listed.json()] == ["acme", "beta"]

    deleted = await client.delete("/api/v1/tenants/beta", headers=admin)
    assert deleted.json() == {"name": "beta", "status": "deleted"}
    listed = await client.get("/api/v1/tenants", headers=admin)
    assert [t["name"] for t in listed.json()] == ["acme"]
    _assert_error(await client.post("/api/v1/tenants/beta/resume", headers=admin), 409, "conflict")
    _assert_error(await client.put("/api/v1/tenants/beta", headers=admin, json={}), 409, "conflict")

    # bad input: the OpenCrane envelope with the right status
    for method, url, body, status, code in [
        ("POST", "/api/v1/tenants", {"name": "Not A Label"}, 400, "invalid_request"),
        ("POST", "/api/v1/tenants", {"displayName": "no name"}, 400, "invalid_request"),
        ("POST", "/api/v1/tenants", {"name": "acme"}, 409, "conflict"),
        ("POST", "/api/v1/tenants", {"name": "x", "email": "nope"}, 400, "invalid_request"),
        ("PUT", "/api/v1/tenants/acme", {"team": 3}, 400, "invalid_request"),
        ("PUT", "/api/v1/tenants/ghost", {"team": "t"}, 404, "not_found"),
        ("GET", "/api/v1/tenants/ghost", None, 404, "not_found"),
        ("POST", "/api/v1/tenants/ghost/suspend", None, 404, "not_found"),
    ]:
        response = await client.request(method, url, headers=admin, json=body)
        _assert_error(response, status, code)
    malformed = await client.post(
        "/api/v1/tenants", headers={**admin, "Content-Type": "application/json"}, content=b"{"
    )
    _assert_error(malformed, 400, "invalid_json")
    _assert_error(await client.get("/api/v1/tenants"), 401, "unauthorized")


async def test_tenants_are_scoped_and_writes_need_a_platform_admin(
    client: httpx.AsyncClient,
) -> None:
    acme, other = await make_tenant("acme"), await make_tenant("other")
    viewer = _auth(await make_token(acme, "viewer"))
    tenant_admin = _auth(await make_token(acme, "tenant_admin"))

    mine = await client.get("/api/v1/tenants", headers=viewer)
    assert [t["name"] for t in mine.json()] == ["acme"]
    assert (await client.get("/api/v1/tenants/acme", headers=viewer)).status_code == 200
    _assert_error(await client.get("/api/v1/tenants/other", headers=viewer), 404, "not_found")

    for headers in (viewer, tenant_admin):
        for method, url, body in [
            ("POST", "/api/v1/tenants", {"name": "mine"}),
            ("PUT", "/api/v1/tenants/acme", {"displayName": "Mine"}),
            ("POST", "/api/v1/tenants/acme/suspend", None),
            ("POST", "/api/v1/tenants/other/suspend", None),
            ("DELETE", "/api/v1/tenants/acme", None),
        ]:
            response = await client.request(method, url, headers=headers, json=body)
            _assert_error(response, 403, "forbidden")
    await audit.flush()
    assert await Tenant.all().count() == 2
    assert {(t.name, t.display_name, t.phase) for t in await Tenant.all()} == {
        ("acme", acme.display_name, TenantPhase.ACTIVE),
        ("other", other.display_name, TenantPhase.ACTIVE),
    }


async def test_tenants_read_the_same_over_rest_and_graphql(
    client: httpx.AsyncClient, gql: GraphQLClient
) -> None:
    admin = await make_token(None, "platform_admin")
    for name in ("acme", "beta"):
        await client.post(
            "/api/v1/tenants",
            headers=_auth(admin),
            json={"name": name, "displayName": name.upper(), "email": f"a@{name}.test"},
        )
    await client.post("/api/v1/tenants/beta/suspend", headers=_auth(admin))
    fields = "name displayName email team phase createdAt"
    data = await gql.ok(f"{{ tenants(first: 100) {{ edges {{ node {{ {fields} }} }} }} }}", admin)
    graphql = [e["node"] for e in data["tenants"]["edges"]]
    rest = (await client.get("/api/v1/tenants", headers=_auth(admin))).json()
    assert [{**t, "phase": t["phase"].upper()} for t in rest] == graphql
    one = await gql.ok(f'{{ tenant(name: "beta") {{ {fields} }} }}', admin)
    got = (await client.get("/api/v1/tenants/beta", headers=_auth(admin))).json()
    assert {**got, "phase": "SUSPENDED"} == one["tenant"]


# ---------------------------------------------------------------- access tokens
async def test_access_token_flow(client: httpx.AsyncClient) -> None:
    acme = await make_tenant("acme")
    admin = _auth(await make_token(acme, "tenant_admin"))
    created = await client.post(
        "/api/v1/access-tokens",
        headers=admin,
        json={"name": "ci", "owner": "someone", "expiresAt": "2099-01-01T00:00:00Z"},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["id"].startswith("tok_") and body["plainTextToken"]
    assert (body["role"], body["tenant"], body["name"]) == ("viewer", "acme", "ci")
    assert body["expiresAt"].startswith("2099-01-01T00:00:00")
    new = _auth(body["plainTextToken"])
    assert (await client.get("/api/v1/tenants/acme", headers=new)).status_code == 200

    operator = await client.post(
        "/api/v1/access-tokens", headers=admin, json={"name": "ops", "role": "operator"}
    )
    assert operator.json()["role"] == "operator" and operator.json()["expiresAt"] is None

    listed = await client.get("/api/v1/access-tokens", headers=admin)
    assert listed.status_code == 200
    rows = {r["name"]: r for r in listed.json()}
    assert {"ci", "ops", "tenant_admin token"} == set(rows)
    assert "plainTextToken" not in listed.text and body["plainTextToken"] not in listed.text
    assert rows["ci"]["tenant"] == "acme" and rows["ci"]["prefix"] == body["plainTextToken"][:12]
    assert set(rows["ci"]) == {
        "id", "name", "owner", "role", "tenant", "prefix", "createdAt", "expiresAt", "lastUsedAt"
    }  # fmt: skip
    assert rows["ci"]["lastUsedAt"] is not None  # it was used above

    revoked = await client.delete(f"/api/v1/access-tokens/{body['id']}", headers=admin)
    assert revoked.status_code == 204 and revoked.content == b""
    _assert_error(await client.get("/api/v1/tenants/acme", headers=new), 401, "unauthorized")
    listed = await client.get("/api/v1/access-tokens", headers=admin)
    assert body["id"] not in {r["id"] for r in listed.json()}
    again = await client.delete(f"/api/v1/access-tokens/{body['id']}", headers=admin)
    assert again.status_code == 204  # idempotent

    for payload, status in [
        ({"name": "x", "expiresAt": "tomorrow"}, 400),
        ({"name": "x", "expiresAt": "2000-01-01T00:00:00Z"}, 400),
        ({"name": "x", "expiresAt": "2099-01-01T00:00:00"}, 400),  # no timezone
        ({"name": "x", "role": "emperor"}, 400),
        ({"name": ""}, 400),
        ({}, 400),
        ({"name": "x", "tenant": "ghost"}, 404),
        ({"name": "x", "role": "platform_admin"}, 403),
    ]:
        response = await client.post("/api/v1/access-tokens", headers=admin, json=payload)
        assert response.status_code == status, (payload, response.text)
        assert set(response.json()) >= {"error", "code"}
    _assert_error(
        await client.delete("/api/v1/access-tokens/tok_nope", headers=admin), 404, "not_found"
    )


async def test_the_seeds_access_token_example_from_a_platform_admin(
    client: httpx.AsyncClient,
) -> None:
    platform = _auth(await make_token(None, "platform_admin"))
    body = {"name": "ci-bot", "owner": "ops@example.com", "expiresAt": "2099-01-01T00:00:00Z"}
    created = await client.post("/api/v1/access-tokens", headers=platform, json=body)
    assert created.status_code == 201, created.text
    token = created.json()
    # OpenCrane's tokens are operator tokens: a platform caller naming no tenant gets one
    # at platform scope, with its own role; `owner` is recorded and returned as given.
    assert (token["role"], token["tenant"], token["owner"]) == (
        "platform_admin",
        None,
        "ops@example.com",
    )
    listed = {
        r["id"]: r for r in (await client.get("/api/v1/access-tokens", headers=platform)).json()
    }
    assert listed[token["id"]]["owner"] == "ops@example.com"
    new = _auth(token["plainTextToken"])
    assert (await client.get("/api/v1/tenants", headers=new)).status_code == 200
    # a tenant's admin names no owner: the owner is the creator
    acme = await make_tenant("acme")
    admin = _auth(await make_token(acme, "tenant_admin"))
    mine = await client.post("/api/v1/access-tokens", headers=admin, json={"name": "x"})
    assert mine.json()["role"] == "viewer" and mine.json()["owner"].startswith("tok_")
    too_long = await client.post(
        "/api/v1/access-tokens", headers=admin, json={"name": "x", "owner": "o" * 201}
    )
    _assert_error(too_long, 400, "invalid_request")


async def test_access_tokens_are_tenant_scoped_and_viewers_cannot_write(
    client: httpx.AsyncClient,
) -> None:
    acme, other = await make_tenant("acme"), await make_tenant("other")
    await make_token(other, "operator")
    foreign = await AccessToken.get(tenant_id=other.id)
    admin = _auth(await make_token(acme, "tenant_admin"))
    viewer = _auth(await make_token(acme, "viewer"))

    listed = await client.get("/api/v1/access-tokens", headers=admin)
    assert {r["tenant"] for r in listed.json()} == {"acme"}
    _assert_error(
        await client.delete(f"/api/v1/access-tokens/{foreign.id}", headers=admin), 404, "not_found"
    )
    assert (await AccessToken.get(id=foreign.id)).revoked_at is None
    cross = await client.post(
        "/api/v1/access-tokens", headers=admin, json={"name": "x", "tenant": "other"}
    )
    _assert_error(cross, 404, "not_found")

    count = await AccessToken.all().count()
    _assert_error(await client.get("/api/v1/access-tokens", headers=viewer), 403, "forbidden")
    _assert_error(
        await client.post("/api/v1/access-tokens", headers=viewer, json={"name": "x"}),
        403,
        "forbidden",
    )
    own = (await AccessToken.filter(tenant_id=acme.id).first()).id  # type: ignore[union-attr]
    _assert_error(
        await client.delete(f"/api/v1/access-tokens/{own}", headers=viewer), 403, "forbidden"
    )
    assert await AccessToken.all().count() == count
    assert await AccessToken.filter(revoked_at__isnull=False).count() == 0


async def test_access_tokens_parity_with_graphql(
    client: httpx.AsyncClient, gql: GraphQLClient
) -> None:
    acme = await make_tenant("acme")
    admin = await make_token(acme, "tenant_admin")
    made = (
        await client.post(
            "/api/v1/access-tokens", headers=_auth(admin), json={"name": "rest", "role": "billing"}
        )
    ).json()
    data = await gql.ok(
        'mutation { createAccessToken(input: {name: "gql", role: "viewer"}) '
        "{ plainTextToken token { id } } }",
        admin,
    )
    gql_id = data["createAccessToken"]["token"]["id"]
    await client.delete(f"/api/v1/access-tokens/{gql_id}", headers=_auth(admin))

    query = (
        "query($r: Boolean!) { accessTokens(first: 100, includeRevoked: $r) "
        "{ edges { node { id name role prefix expiresAt lastUsedAt tenant { name } } } } }"
    )
    active = [e["node"] for e in (await gql.ok(query, admin, r=False))["accessTokens"]["edges"]]
    every = [e["node"] for e in (await gql.ok(query, admin, r=True))["accessTokens"]["edges"]]
    assert gql_id in {t["id"] for t in every} - {t["id"] for t in active}
    rest = (await client.get("/api/v1/access-tokens", headers=_auth(admin))).json()

    def common(t: dict[str, Any]) -> tuple[Any, ...]:
        tenant = t["tenant"]["name"] if isinstance(t["tenant"], dict) else t["tenant"]
        return (t["id"], t["name"], t["role"], t["prefix"], t["expiresAt"], tenant)

    assert [common(t) for t in rest] == [common(t) for t in active]
    assert made["id"] in {t["id"] for t in active}


# ---------------------------------------------------------------- audit
async def test_audit_is_keyset_paginated_and_tenant_scoped(client: httpx.AsyncClient) -> None:
    admin = _auth(await make_token(None, "platform_admin"))
    for name in ("acme", "other"):
        await client.post("/api/v1/tenants", headers=admin, json={"name": name})
    acme, other = await Tenant.get(name="acme"), await Tenant.get(name="other")
    acme_admin = _auth(await make_token(acme, "tenant_admin"))
    await make_token(other, "tenant_admin")
    for i in range(5):
        made = await client.post(
            "/api/v1/access-tokens", headers=acme_admin, json={"name": f"t{i}"}
        )
        assert made.status_code == 201
    await audit.flush()

    first = await client.get("/api/v1/audit?limit=2", headers=acme_admin)
    assert first.status_code == 200
    body = first.json()
    assert body["pagination"]["limit"] == 2 and body["pagination"]["hasMore"] is True
    assert [e["resource"] for e in body["data"]] == [
        (await AccessToken.get(name=n)).id for n in ("t4", "t3")
    ]
    entry = body["data"][0]
    assert set(entry) == {
        "id", "timestamp", "tenant", "action", "resource", "message", "actor", "outcome"
    }  # fmt: skip
    assert (entry["tenant"], entry["action"], entry["outcome"]) == (
        "acme",
        "token.create",
        "success",
    )

    seen = [e["id"] for e in body["data"]]
    cursor = body["pagination"]["nextCursor"]
    while cursor:
        page = (
            await client.get(f"/api/v1/audit?limit=2&cursor={cursor}", headers=acme_admin)
        ).json()
        seen += [e["id"] for e in page["data"]]
        cursor = page["pagination"].get("nextCursor")
        assert ("nextCursor" in page["pagination"]) == page["pagination"]["hasMore"]
    everything = (await client.get("/api/v1/audit", headers=acme_admin)).json()
    assert everything["pagination"] == {"limit": 100, "hasMore": False}
    assert [e["id"] for e in everything["data"]] == seen == sorted(seen, reverse=True)
    assert {e["tenant"] for e in everything["data"]} == {"acme"}  # never another tenant's

    # a limit above the resolver's page size is read page by page
    platform = (await client.get("/api/v1/audit?limit=1000", headers=admin)).json()
    assert len(platform["data"]) > len(seen) and {"acme", "other"} <= {
        e["tenant"] for e in platform["data"]
    }
    only = (
        await client.get("/api/v1/audit?tenant=other&action=tenant.create", headers=admin)
    ).json()
    assert [(e["tenant"], e["action"]) for e in only["data"]] == [("other", "tenant.create")]

    for url, status, code in [
        ("/api/v1/audit?tenant=other", 404, "not_found"),
        ("/api/v1/audit?limit=0", 400, "invalid_request"),
        ("/api/v1/audit?limit=1001", 400, "invalid_request"),
        ("/api/v1/audit?limit=x", 400, "invalid_request"),
        ("/api/v1/audit?cursor=!!!", 400, "invalid_request"),
    ]:
        _assert_error(await client.get(url, headers=acme_admin), status, code)
    viewer = _auth(await make_token(acme, "viewer"))
    _assert_error(await client.get("/api/v1/audit", headers=viewer), 403, "forbidden")


# ---------------------------------------------------------------- AI budgets
BUDGET_KEYS = {
    "scope", "monthlyLimitUsd", "currentSpendUsd", "reservedUsd", "budgetAlertState", "window"
}  # fmt: skip


async def test_ai_budget_flow(client: httpx.AsyncClient) -> None:
    acme, other = await make_tenant("acme"), await make_tenant("other")
    platform = _auth(await make_token(None, "platform_admin"))
    admin = _auth(await make_token(acme, "tenant_admin"))
    await make_token(acme, "operator")
    account = (await AccessToken.get(tenant_id=acme.id, role="operator")).id
    await make_token(other, "operator")
    foreign = (await AccessToken.get(tenant_id=other.id)).id

    unset = await client.get("/api/v1/ai-budget/global", headers=platform)
    assert unset.status_code == 200 and set(unset.json()) == BUDGET_KEYS
    assert unset.json()["monthlyLimitUsd"] is None and unset.json()["scope"] == "global"
    put = await client.put(
        "/api/v1/ai-budget/global", headers=platform, json={"monthlyLimitUsd": 1000}
    )
    assert put.json()["monthlyLimitUsd"] == 1000 and put.json()["budgetAlertState"] == "ok"
    got = await client.get("/api/v1/ai-budget/global", headers=platform)
    assert got.json() == put.json()

    set_account = await client.put(
        f"/api/v1/ai-budget/accounts/{account}", headers=admin, json={"monthlyLimitUsd": 12.5}
    )
    assert set_account.status_code == 200, set_account.text
    assert set_account.json()["userId"] == account
    assert set_account.json()["monthlyLimitUsd"] == 12.5
    listed = await client.get("/api/v1/ai-budget/accounts", headers=admin)
    assert [(b["userId"], b["monthlyLimitUsd"]) for b in listed.json()] == [(account, 12.5)]
    removed = await client.delete(f"/api/v1/ai-budget/accounts/{account}", headers=admin)
    assert removed.status_code == 200 and removed.json()["userId"] == account
    assert (await client.get("/api/v1/ai-budget/accounts", headers=admin)).json() == []
    _assert_error(
        await client.delete(f"/api/v1/ai-budget/accounts/{account}", headers=admin),
        404,
        "not_found",
    )

    spend = await client.get("/api/v1/ai-budget/acme/spend", headers=admin)
    assert spend.status_code == 200 and spend.json()["scope"] == "tenant"
    assert spend.json()["currentSpendUsd"] == 0

    # another tenant's objects answer 404; a tenant's callers have no global budget
    for method, url, body in [
        ("GET", "/api/v1/ai-budget/other/spend", None),
        ("GET", "/api/v1/ai-budget/global", None),
        ("PUT", f"/api/v1/ai-budget/accounts/{foreign}", {"monthlyLimitUsd": 1}),
        ("DELETE", f"/api/v1/ai-budget/accounts/{foreign}", None),
        ("GET", "/api/v1/ai-budget/ghost/spend", None),
    ]:
        _assert_error(await client.request(method, url, headers=admin, json=body), 404, "not_found")
    for method, url, body in [
        ("PUT", "/api/v1/ai-budget/global", {"monthlyLimitUsd": -1}),
        ("PUT", "/api/v1/ai-budget/global", {"monthlyLimitUsd": "lots"}),
        ("PUT", "/api/v1/ai-budget/global", {}),
        ("PUT", "/api/v1/ai-budget/accounts/bob", {"monthlyLimitUsd": 1}),
    ]:
        response = await client.request(method, url, headers=platform, json=body)
        _assert_error(response, 400, "invalid_request")

    viewer = _auth(await make_token(acme, "viewer"))
    assert (await client.get("/api/v1/ai-budget/acme/spend", headers=viewer)).status_code == 200
    for method, url, body in [
        ("PUT", f"/api/v1/ai-budget/accounts/{account}", {"monthlyLimitUsd": 1}),
        ("DELETE", f"/api/v1/ai-budget/accounts/{account}", None),
        ("PUT", "/api/v1/ai-budget/global", {"monthlyLimitUsd": 1}),
    ]:
        _assert_error(
            await client.request(method, url, headers=viewer, json=body), 403, "forbidden"
        )
    listed = await client.get("/api/v1/ai-budget/accounts", headers=platform)
    assert listed.json() == []
    assert (await client.get("/api/v1/ai-budget/global", headers=platform)).json() == put.json()


# ---------------------------------------------------------------- provider keys
async def test_provider_keys_flow(client: httpx.AsyncClient) -> None:
    acme = await make_tenant("acme")
    await make_tenant("other")
    admin = _auth(await make_token(acme, "tenant_admin"))
    platform = _auth(await make_token(None, "platform_admin"))
    secret = "sk-test-" + "x" * 30

    assert (await client.get("/api/v1/providers/keys", headers=admin)).json() == []
    put = await client.put("/api/v1/providers/keys/openai", headers=admin, json={"apiKey": secret})
    assert put.status_code == 200, put.text
    assert put.json()["provider"] == "openai" and put.json()["configured"] is True
    assert put.json()["updatedAt"]
    listed = await client.get("/api/v1/providers/keys", headers=admin)
    assert [(k["provider"], k["configured"]) for k in listed.json()] == [("openai", True)]
    assert secret not in listed.text and secret not in put.text

    # a platform caller names the tenant; the other tenant has none
    theirs = await client.get("/api/v1/providers/keys?tenant=other", headers=platform)
    assert theirs.json() == []
    ours = await client.get("/api/v1/providers/keys?tenant=acme", headers=platform)
    assert [k["provider"] for k in ours.json()] == ["openai"]
    _assert_error(
        await client.get("/api/v1/providers/keys?tenant=other", headers=admin), 404, "not_found"
    )
    _assert_error(
        await client.put(
            "/api/v1/providers/keys/openai?tenant=other", headers=admin, json={"apiKey": "k"}
        ),
        404,
        "not_found",
    )

    for url, body in [
        ("/api/v1/providers/keys/openai", {}),
        ("/api/v1/providers/keys/openai", {"apiKey": ""}),
        ("/api/v1/providers/keys/Not%20Valid", {"apiKey": "k"}),
    ]:
        _assert_error(await client.put(url, headers=admin, json=body), 400, "invalid_request")
    unknown = await client.put(
        "/api/v1/providers/keys/anthropicx", headers=admin, json={"apiKey": "k"}
    )
    _assert_error(unknown, 404, "not_found")
    assert "openai" in unknown.json()["error"]

    viewer = _auth(await make_token(acme, "viewer"))
    _assert_error(await client.get("/api/v1/providers/keys", headers=viewer), 403, "forbidden")
    _assert_error(
        await client.put("/api/v1/providers/keys/openai", headers=viewer, json={"apiKey": "k"}),
        403,
        "forbidden",
    )
    _assert_error(
        await client.delete("/api/v1/providers/keys/openai", headers=viewer), 403, "forbidden"
    )
    still = await client.get("/api/v1/providers/keys", headers=admin)
    assert still.json() == listed.json()

    deleted = await client.delete("/api/v1/providers/keys/openai", headers=admin)
    assert deleted.status_code == 204 and deleted.content == b""
    assert (await client.get("/api/v1/providers/keys", headers=admin)).json() == []
    _assert_error(
        await client.delete("/api/v1/providers/keys/openai", headers=admin), 404, "not_found"
    )


async def test_server_metrics_for_platform_callers(client: httpx.AsyncClient) -> None:
    await make_tenant("acme")
    await make_tenant("beta")
    paused = await make_tenant("paused")
    await Tenant.filter(id=paused.id).update(phase=TenantPhase.SUSPENDED)
    admin = await make_token(None, "platform_admin")

    response = await client.get("/api/v1/metrics/server", headers=_auth(admin))
    assert response.status_code == 200, response.text
    shot = response.json()
    assert set(shot) == {
        "cpuPercent",
        "memoryUsedBytes",
        "memoryTotalBytes",
        "storageUsedBytes",
        "storageTotalBytes",
        "activeTenants",
        "sampledAt",
    }
    assert shot["activeTenants"] == 2
    assert 0 <= shot["cpuPercent"] <= 100
    assert 0 < shot["memoryUsedBytes"] <= shot["memoryTotalBytes"]
    assert 0 < shot["storageUsedBytes"] <= shot["storageTotalBytes"]
    sampled = datetime.fromisoformat(shot["sampledAt"])
    assert abs(datetime.now(UTC) - sampled) < timedelta(minutes=1)

    tenant_admin = await make_token(paused, "tenant_admin")
    _assert_error(
        await client.get("/api/v1/metrics/server", headers=_auth(tenant_admin)), 403, "forbidden"
    )
    _assert_error(await client.get("/api/v1/metrics/server"), 401, "unauthorized")


async def test_provider_keys_without_a_secret_key_say_how_to_make_one(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(secretbox, "_key", None)
    monkeypatch.delenv("AGENTPLANE_SECRET_KEY", raising=False)
    admin = _auth(await make_token(await make_tenant("acme"), "tenant_admin"))
    response = await client.put(
        "/api/v1/providers/keys/openai", headers=admin, json={"apiKey": "k"}
    )
    _assert_error(response, 503, "not_configured")
    # the command the README gives, which prints a key that can be pasted as is
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    command = (
        "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
    )
    assert command in response.json()["error"] and command in readme
