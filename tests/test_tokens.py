"""Access tokens: only a SHA-256 hash is stored, the plaintext is shown once, and the
configured admin token (AGENTPLANE_ADMIN_TOKEN) acts as a platform admin."""

import asyncio
import base64
import hashlib
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from tortoise.connection import get_connection

from agentplane.core.config import Settings
from agentplane.core.errors import Unauthenticated
from agentplane.http.app import create_app
from agentplane.models import AccessToken, Task, TaskStatus
from agentplane.resolvers import actor_cache
from agentplane.resolvers.auth import Actor, authenticate, generate_token
from tests.support.database import truncate_all
from tests.support.factories import make_tenant, make_token
from tests.support.graphql import GraphQLClient, error_codes

MINT = (
    'mutation($name: String!) { createAccessToken(input: {name: $name, tenant: "acme",'
    ' role: "operator"}) { token { id name role prefix lastUsedAt } plainTextToken } }'
)
LIST = (
    "{ accessTokens(first: 100) { edges { node { id name role prefix expiresAt revokedAt lastUsedAt"
    " createdAt tenant { id name } } } } }"
)
SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{43,}$")


async def all_rows() -> dict[str, list[dict[str, Any]]]:
    """Every row of every table in the database, raw from SQL (not through the models)."""
    conn = get_connection("default")
    if conn.capabilities.dialect == "postgres":
        tables = await conn.execute_query_dict(
            "SELECT table_name AS name FROM information_schema.tables"
            " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        )
    else:
        tables = await conn.execute_query_dict(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    names = sorted(t["name"] for t in tables)
    assert {"tenant", "access_token", "agent", "task", "step", "usage_record"} <= set(names)
    return {name: await conn.execute_query_dict(f'SELECT * FROM "{name}"') for name in names}


def as_text(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("latin-1")
    return str(value)


async def assert_stored_nowhere(*secrets: str) -> int:
    """No column of any row holds any of `secrets`; returns how many values were scanned."""
    scanned = 0
    for table, rows in (await all_rows()).items():
        for row in rows:
            for column, value in row.items():
                scanned += 1
                text = as_text(value)
                for secret in secrets:
                    assert secret not in text, f"{table}.{column} holds a secret"
    return scanned


async def wait_terminal(task_id: str) -> Task:
    async with asyncio.timeout(10):
        while True:
            task = await Task.get(id=task_id)
            if task.status.is_terminal:
                return task
            await asyncio.sleep(0.02)


async def test_plaintext_is_stored_nowhere_and_the_hash_is_its_sha256(
    gql: GraphQLClient,
) -> None:
    # given a tenant admin who mints an operator token
    tenant = await make_tenant("acme")
    admin = await make_token(tenant, "tenant_admin")
    minted = (await gql.ok(MINT, admin, name="ci"))["createAccessToken"]
    plaintext = minted["plainTextToken"]
    # and the token is used for real: an agent, a task run to completion
    agent = await gql.ok(
        'mutation { createAgent(input: {name: "echo"}) { agent { id } } }', plaintext
    )
    task = await gql.ok(
        'mutation($a: ID!) { submitTask(input: {agentId: $a, query: "hello"}) { task { id } } }',
        plaintext,
        a=agent["createAgent"]["agent"]["id"],
    )
    done = await wait_terminal(task["submitTask"]["task"]["id"])
    assert done.status == TaskStatus.COMPLETED
    # then neither the plaintext nor its secret part (beyond the displayed prefix)
    # appears in any column of any row of any table
    row = await AccessToken.get(id=minted["token"]["id"])
    assert row.prefix == plaintext[:12] == minted["token"]["prefix"]
    scanned = await assert_stored_nowhere(plaintext, plaintext[len(row.prefix) :])
    assert scanned > 50
    # and what is stored is the SHA-256 hex digest of the plaintext
    assert row.token_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", row.token_hash)
    raw = await get_connection("default").execute_query_dict(
        "SELECT token_hash FROM access_token WHERE id = $1"
        if get_connection("default").capabilities.dialect == "postgres"
        else "SELECT token_hash FROM access_token WHERE id = ?",
        [row.id],
    )
    assert raw == [{"token_hash": hashlib.sha256(plaintext.encode()).hexdigest()}]


async def test_tokens_carry_at_least_256_random_bits_and_never_repeat(
    gql: GraphQLClient,
) -> None:
    tenant = await make_tenant("acme")
    admin = await make_token(tenant, "tenant_admin")
    # when the same token is minted twice with identical inputs
    first = (await gql.ok(MINT, admin, name="same"))["createAccessToken"]["plainTextToken"]
    second = (await gql.ok(MINT, admin, name="same"))["createAccessToken"]["plainTextToken"]
    # then the two differ, and so do their hashes
    assert first != second
    hashes = await AccessToken.filter(name="same").values_list("token_hash", flat=True)
    assert len(set(hashes)) == 2
    # and each is `agp_` + at least 43 urlsafe-base64 characters = at least 32 random bytes
    for plaintext in (first, second, *(generate_token() for _ in range(200))):
        assert plaintext.startswith("agp_")
        secret = plaintext.removeprefix("agp_")
        assert SECRET_RE.fullmatch(secret), plaintext
        assert len(base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))) >= 32
    assert len({generate_token() for _ in range(1000)}) == 1000


async def test_access_tokens_never_expose_the_plaintext(gql: GraphQLClient) -> None:
    tenant = await make_tenant("acme")
    admin = await make_token(tenant, "tenant_admin")
    plaintext = (await gql.ok(MINT, admin, name="ci"))["createAccessToken"]["plainTextToken"]
    # the AccessToken type has no field that could carry the plaintext or its hash
    fields = await gql.ok('{ __type(name: "AccessToken") { fields { name } } }', admin)
    assert {f["name"] for f in fields["__type"]["fields"]} == {
        "id",
        "name",
        "role",
        "prefix",
        "expiresAt",
        "revokedAt",
        "lastUsedAt",
        "createdAt",
        "tenant",
        "ownerUserId",  # the user a device-login token acts for
        "createdBy",  # who minted it (an ID)
    }
    # and the only fields in the whole schema that return a plaintext are the one-time
    # payloads of the mutations that mint a token
    schema = await gql.ok("{ __schema { types { name fields { name } } } }", admin)
    plain = [
        (t["name"], f["name"])
        for t in schema["__schema"]["types"]
        for f in t["fields"] or []
        if re.search("plain|secret|hash", f["name"], re.IGNORECASE)
    ]
    assert sorted(plain) == [
        ("CreateAccessTokenPayload", "plainTextToken"),
        ("CreatePrincipalPayload", "plainTextToken"),
        ("UserTokenPayload", "plainTextToken"),
    ]
    # so listing every field of every token reveals neither the plaintext nor its secret part
    listed = await gql.ok(LIST, admin)
    assert len(listed["accessTokens"]["edges"]) == 2
    text = str(listed)
    assert plaintext not in text
    assert plaintext[12:] not in text
    hashes = await AccessToken.all().values_list("token_hash", flat=True)
    assert len(hashes) == 2
    assert [h for h in hashes if h in text] == []


async def test_last_used_at_is_set_when_a_token_is_used(gql: GraphQLClient) -> None:
    # given a freshly minted token, never used
    tenant = await make_tenant("acme")
    admin = await make_token(tenant, "tenant_admin")
    minted = (await gql.ok(MINT, admin, name="ci"))["createAccessToken"]
    assert minted["token"]["lastUsedAt"] is None
    token_id = minted["token"]["id"]
    assert (await AccessToken.get(id=token_id)).last_used_at is None
    # when it is used
    before = datetime.now(UTC)
    assert (await gql.ok("{ viewer { role } }", minted["plainTextToken"]))["viewer"] == {
        "role": "operator"
    }
    after = datetime.now(UTC)
    # then lastUsedAt records when, in the database and in the listing
    used = (await AccessToken.get(id=token_id)).last_used_at
    assert used is not None and before <= used <= after
    listed = {
        e["node"]["id"]: e["node"] for e in (await gql.ok(LIST, admin))["accessTokens"]["edges"]
    }
    assert datetime.fromisoformat(listed[token_id]["lastUsedAt"]) == used


async def test_last_used_at_is_written_at_most_once_a_minute(gql: GraphQLClient) -> None:
    tenant = await make_tenant("acme")
    plaintext = await make_token(tenant, "viewer")
    row = await AccessToken.get(tenant_id=tenant.id)
    # a use 10 s after the last one leaves the timestamp alone
    recent = datetime.now(UTC) - timedelta(seconds=10)
    await AccessToken.filter(id=row.id).update(last_used_at=recent)
    await gql.ok("{ viewer { role } }", plaintext)
    assert (await AccessToken.get(id=row.id)).last_used_at == recent
    # a use 2 minutes after the last one moves it to now
    stale = datetime.now(UTC) - timedelta(minutes=2)
    await AccessToken.filter(id=row.id).update(last_used_at=stale)
    actor_cache.clear()  # as TTL_S later: the stamp is checked when the cache refills
    before = datetime.now(UTC)
    await gql.ok("{ viewer { role } }", plaintext)
    used = (await AccessToken.get(id=row.id)).last_used_at
    assert used is not None and used >= before


ADMIN_TOKEN = "break-glass-" + "k" * 40


@pytest.fixture
async def admin_gql(settings: Settings) -> AsyncIterator[GraphQLClient]:
    """An app configured with AGENTPLANE_ADMIN_TOKEN (in place of the `app` fixture)."""
    await truncate_all(settings.database_url)
    application = create_app(replace(settings, admin_token=ADMIN_TOKEN), run_worker=False)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://agentplane.test") as c:
            yield GraphQLClient(c)


async def test_the_configured_admin_token_acts_as_platform_admin(
    admin_gql: GraphQLClient,
) -> None:
    # when the configured admin token is presented
    viewer = await admin_gql.ok("{ viewer { kind role tokenId tenant { id } } }", ADMIN_TOKEN)
    # then the caller is a platform admin with no tenant and no token row
    assert viewer["viewer"] == {
        "kind": "admin_token",
        "role": "platform_admin",
        "tokenId": None,
        "tenant": None,
    }
    # and can do platform-only things: create tenants, list them all, mint tokens anywhere
    for name in ("acme", "globex"):
        await admin_gql.ok(
            "mutation($n: String!) { createTenant(input: {name: $n}) { tenant { id } } }",
            ADMIN_TOKEN,
            n=name,
        )
    tenants = await admin_gql.ok("{ tenants(first: 100) { edges { node { name } } } }", ADMIN_TOKEN)
    assert [e["node"]["name"] for e in tenants["tenants"]["edges"]] == ["acme", "globex"]
    minted = await admin_gql.ok(MINT, ADMIN_TOKEN, name="from-admin")
    assert minted["createAccessToken"]["token"]["role"] == "operator"
    # the admin token itself is not stored anywhere: the one row is the token it minted
    assert await AccessToken.all().count() == 1
    await assert_stored_nowhere(ADMIN_TOKEN)


@pytest.mark.parametrize(
    "presented", [ADMIN_TOKEN + "x", ADMIN_TOKEN[:-1], ADMIN_TOKEN.upper(), "agp_" + "k" * 43]
)
async def test_near_misses_of_the_admin_token_are_unauthenticated(
    admin_gql: GraphQLClient, presented: str
) -> None:
    body = await admin_gql(
        'mutation { createTenant(input: {name: "x"}) { tenant { id } } }', presented
    )
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert body["data"] is None
    assert (
        await get_connection("default").execute_query_dict("SELECT COUNT(*) AS n FROM tenant")
    ) == [{"n": 0}]


async def test_authenticate_maps_the_admin_token_and_access_tokens_to_actors(app: Any) -> None:
    # the configured admin token: a platform admin, without touching the database
    assert await authenticate(ADMIN_TOKEN, ADMIN_TOKEN) == Actor(
        kind="admin_token", role="platform_admin", tenant_id=None
    )
    # no credential at all: anonymous
    assert await authenticate(None, ADMIN_TOKEN) is None
    # an access token still works next to a configured admin token
    tenant = await make_tenant("acme")
    plaintext = await make_token(tenant, "viewer")
    row = await AccessToken.get(tenant_id=tenant.id)
    assert await authenticate(plaintext, ADMIN_TOKEN) == Actor(
        kind="token", role="viewer", tenant_id=tenant.id, token_id=row.id, tenant_phase="active"
    )
    # without an admin token configured, the same string is just an unknown token
    with pytest.raises(Unauthenticated):
        await authenticate(ADMIN_TOKEN, None)
    # an empty admin token setting never matches an empty credential
    with pytest.raises(Unauthenticated):
        await authenticate("", "")
    # the admin token does not let a near miss through
    with pytest.raises(Unauthenticated):
        await authenticate(ADMIN_TOKEN[:-1], ADMIN_TOKEN)
