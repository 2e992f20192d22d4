"""Local accounts, sessions (cookie + CSRF), OIDC login against a real local provider,
and the device authorization grant for the CLI."""

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from agentplane.core.config import Settings
from agentplane.http.app import create_app
from agentplane.models import AuditEvent, DeviceGrant, Session, User
from tests.support.database import truncate_all
from tests.support.factories import make_tenant, make_token
from tests.support.oidc_provider import serve_oidc

BASE = "http://agentplane.test"
OWNER = {"email": "Owner@Example.com", "password": "correct horse battery", "name": "Owner"}
VIEWER = {"query": "{ viewer { kind role tenant { name } } }"}


async def gql(
    client: httpx.AsyncClient, query: str, csrf: str | None = None, **variables: Any
) -> Any:
    headers = {"X-CSRF-Token": csrf} if csrf else {}
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json()


def codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors") or []]


async def register(client: httpx.AsyncClient) -> str:
    response = await client.post("/api/v1/auth/register", json=OWNER)
    assert response.status_code == 201, response.text
    csrf: str = response.json()["csrfToken"]
    return csrf


@pytest.mark.parametrize(
    "path", ["/api/v1/auth/register", "/api/control-plane/auth/register-owner"]
)
async def test_a_remote_first_owner_needs_the_bootstrap_token(app: Starlette, path: str) -> None:
    remote = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=remote, base_url=BASE) as client:
        # from another machine, an empty installation cannot simply be claimed
        refused = await client.post(path, json=OWNER)
        assert refused.status_code == 403, refused.text
        assert not await User.exists()
        # nor with a token that is not a platform admin's
        viewer = await make_token(await make_tenant("acme"), "viewer")
        weak = await client.post(path, json=OWNER, headers={"Authorization": f"Bearer {viewer}"})
        assert weak.status_code == 403
        # but the platform-admin token printed at first start lets the owner register
        admin = await make_token(None, "platform_admin")
        if path.endswith("register-owner"):  # Koda sends it as its bootstrap code
            claimed = await client.post(path, json={**OWNER, "bootstrap_code": admin})
        else:
            claimed = await client.post(
                path, json=OWNER, headers={"Authorization": f"Bearer {admin}"}
            )
        assert claimed.status_code == 201, claimed.text
        assert await User.filter(owner=True).count() == 1


async def test_first_owner_registration_login_sessions_and_csrf(
    client: httpx.AsyncClient,
) -> None:
    # given an empty installation
    me = (await client.get("/api/v1/auth/me")).json()
    assert me == {"mode": "local", "authenticated": False, "user": None, "registrationOpen": True}

    # when the first owner registers
    response = await client.post("/api/v1/auth/register", json=OWNER)
    assert response.status_code == 201
    cookie = response.headers["set-cookie"]
    assert "agentplane_session=" in cookie and "HttpOnly" in cookie
    assert "SameSite=lax" in cookie and "Secure" not in cookie  # development
    csrf = response.json()["csrfToken"]
    # then they are a platform admin, signed in by cookie
    assert (await gql(client, VIEWER["query"]))["data"]["viewer"] == {
        "kind": "user",
        "role": "platform_admin",
        "tenant": None,
    }
    user = await User.get(email="owner@example.com")
    assert user.password_hash is not None and user.password_hash.startswith("$argon2id$")
    # and registration is closed from now on
    again = await httpx.AsyncClient(transport=client._transport, base_url=BASE).post(
        "/api/v1/auth/register", json={**OWNER, "email": "second@example.com"}
    )
    assert again.status_code == 409 and again.json()["code"] == "conflict"

    # a cookie-authenticated mutation needs the CSRF token
    create = 'mutation { createTenant(input: {name: "acme"}) { tenant { name } } }'
    assert codes(await gql(client, create)) == ["FORBIDDEN"]
    assert codes(await gql(client, create, csrf="wrong")) == ["FORBIDDEN"]
    assert (await gql(client, create, csrf=csrf))["data"]["createTenant"]["tenant"][
        "name"
    ] == "acme"

    # a second browser logs in; a wrong password is refused and audited
    other = httpx.AsyncClient(transport=client._transport, base_url=BASE)
    wrong = await other.post(
        "/api/v1/auth/login", json={"email": OWNER["email"], "password": "nope nope nope"}
    )
    assert wrong.status_code == 401 and wrong.json()["code"] == "unauthorized"
    failure = await AuditEvent.get(action="auth.login", outcome="failure")
    assert failure.resource == "owner@example.com"
    login = await other.post(
        "/api/v1/auth/login", json={"email": OWNER["email"], "password": OWNER["password"]}
    )
    assert login.status_code == 200
    assert await AuditEvent.filter(action="auth.login", outcome="success").count() == 1

    # sessions are listed; revoking the second one signs that browser out at once
    listed = await gql(client, "{ sessions { id method current } }")
    sessions = listed["data"]["sessions"]
    assert len(sessions) == 2 and sorted(s["current"] for s in sessions) == [False, True]
    second = next(s["id"] for s in sessions if not s["current"])
    revoke = "mutation($id: ID!) { revokeSession(input: {id: $id}) { session { revokedAt } } }"
    assert (await gql(client, revoke, csrf=csrf, id=second))["data"]["revokeSession"]["session"][
        "revokedAt"
    ]
    assert (await gql(other, VIEWER["query"]))["data"]["viewer"] is None

    # password change: the old password stops working
    changed = await client.post(
        "/api/v1/auth/password",
        json={"currentPassword": OWNER["password"], "newPassword": "a brand new passphrase"},
        headers={"X-CSRF-Token": csrf},
    )
    assert changed.status_code == 200
    old = await other.post(
        "/api/v1/auth/login", json={"email": OWNER["email"], "password": OWNER["password"]}
    )
    assert old.status_code == 401
    short = await client.post(
        "/api/v1/auth/password",
        json={"currentPassword": "a brand new passphrase", "newPassword": "short"},
        headers={"X-CSRF-Token": csrf},
    )
    assert short.status_code == 400 and short.json()["code"] == "invalid_request"

    # logout ends the session
    assert (
        await client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf})
    ).status_code == 200
    assert (await gql(client, VIEWER["query"]))["data"]["viewer"] is None
    assert await Session.filter(revoked_at__isnull=True).count() == 0


async def test_bad_input_is_a_clear_error_not_a_500(client: httpx.AsyncClient) -> None:
    for path, body, code in (
        ("/api/v1/auth/register", b"not json", "invalid_json"),
        ("/api/v1/auth/register", b"[1]", "invalid_json"),
        ("/api/v1/auth/login", b'{"email": 1}', "invalid_request"),
    ):
        response = await client.post(path, content=body)
        assert response.status_code == 400, (path, response.text)
        assert response.json()["code"] == code
    weak = await client.post("/api/v1/auth/register", json={**OWNER, "password": "short"})
    assert weak.status_code == 400 and weak.json()["detail"] == "field: password"
    assert await User.all().count() == 0


async def test_secure_cookie_in_production(settings: Settings) -> None:
    application: Starlette = create_app(
        dataclasses.replace(settings, env="production"), run_worker=False
    )
    await truncate_all(settings.database_url)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="https://agentplane.test") as c:
            response = await c.post("/api/v1/auth/register", json=OWNER)
    assert response.status_code == 201
    assert "Secure" in response.headers["set-cookie"]


async def test_device_flow(client: httpx.AsyncClient) -> None:
    # given a CLI that starts a device login
    started = (await client.post("/api/v1/auth/device")).json()
    assert set(started) >= {"deviceCode", "userCode", "verificationUri", "expiresIn", "interval"}
    assert started["verificationUri"] == BASE + "/api/v1/auth/device/activate"
    poll = f"/api/v1/auth/device/token?deviceCode={started['deviceCode']}"
    assert (await client.get(poll)).status_code == 202

    # an anonymous browser cannot approve it
    cli = httpx.AsyncClient(transport=client._transport, base_url=BASE)
    page = await cli.get(f"/api/v1/auth/device/activate?userCode={started['userCode']}")
    assert page.status_code == 401
    assert (await client.get(poll)).status_code == 202

    # when the signed-in owner opens the link and confirms (a form post with the CSRF token)
    csrf = await register(client)
    page = await client.get(f"/api/v1/auth/device/activate?userCode={started['userCode']}")
    assert page.status_code == 200 and started["userCode"] in page.text and csrf in page.text
    no_csrf = await client.post(
        "/api/v1/auth/device/activate", json={"userCode": started["userCode"]}
    )
    assert no_csrf.status_code == 403
    approved = await client.post(
        "/api/v1/auth/device/activate",
        data={"userCode": started["userCode"], "csrfToken": csrf},
    )
    assert approved.status_code == 200 and "Approved" in approved.text

    # then the CLI's next poll gets the token, once
    delivered = await cli.get(poll)
    assert delivered.status_code == 200
    token = delivered.json()["token"]
    assert token.startswith("agp_")
    assert (await cli.get(poll)).status_code == 410
    viewer = await cli.post("/graphql", json=VIEWER, headers={"Authorization": f"Bearer {token}"})
    assert viewer.json()["data"]["viewer"] == {
        "kind": "token",
        "role": "platform_admin",
        "tenant": None,
    }
    # and the token acts for the user (its account, for budgets and audit)
    owner = await User.get(email="owner@example.com")
    assert await AuditEvent.filter(action="token.create", actor=owner.id).count() == 1

    # an expired grant answers 410; an unknown one 404
    late = (await client.post("/api/v1/auth/device")).json()
    await DeviceGrant.filter(user_code=late["userCode"]).update(
        expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    expired = await client.get(f"/api/v1/auth/device/token?deviceCode={late['deviceCode']}")
    assert expired.status_code == 410
    unknown = await client.get("/api/v1/auth/device/token?deviceCode=nope")
    assert unknown.status_code == 404
    bad_code = await client.get("/api/v1/auth/device/activate?userCode=AAAA-AAAA")
    assert bad_code.status_code == 400


@pytest.fixture
async def oidc_app(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    with serve_oidc(BASE + "/api/v1/auth/callback") as provider:
        configured = dataclasses.replace(
            settings,
            oidc_issuer=provider.issuer,
            oidc_client_id="agentplane",
            oidc_client_secret="s3cret",
            public_url=BASE,
            oidc_default_role="viewer",
            oidc_default_tenant="acme",
        )
        application: Starlette = create_app(configured, run_worker=False)
        await truncate_all(settings.database_url)
        async with application.router.lifespan_context(application):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
                yield client, provider


async def test_oidc_login_with_pkce_against_a_local_provider(
    oidc_app: tuple[httpx.AsyncClient, Any],
) -> None:
    client, provider = oidc_app
    await make_tenant("acme")
    assert (await client.get("/api/v1/auth/me")).json()["mode"] == "oidc"

    # when the browser starts a login, it is sent to the provider with PKCE and a nonce
    start = await client.get("/api/v1/auth/login?returnTo=/welcome")
    assert start.status_code == 302
    authorize = start.headers["location"]
    assert authorize.startswith(provider.issuer + "/authorize?")
    assert "code_challenge=" in authorize and "code_challenge_method=S256" in authorize
    assert "nonce=" in authorize
    # the (real) provider signs the user in and redirects back with a code
    async with httpx.AsyncClient() as browser:
        back = await browser.get(authorize)
    assert back.status_code == 302, back.text
    callback = back.headers["location"]
    assert callback.startswith(BASE + "/api/v1/auth/callback?code=")
    assert provider.challenge_methods == ["S256"]

    # then the callback exchanges the code, verifies the ID token and opens a session
    done = await client.get(callback.removeprefix(BASE))
    assert done.status_code == 302 and done.headers["location"] == "/welcome", done.text
    assert "agentplane_session=" in done.headers["set-cookie"]
    me = (await client.get("/api/v1/auth/me")).json()
    assert me["authenticated"] is True
    assert me["user"]["email"] == "alice@example.com" and me["role"] == "viewer"
    viewer = await client.post("/graphql", json=VIEWER)
    assert viewer.json()["data"]["viewer"] == {
        "kind": "user",
        "role": "viewer",
        "tenant": {"name": "acme"},
    }
    user = await User.get(email="alice@example.com")
    assert user.oidc_subject == provider.user["sub"] and user.password_hash is None
    assert await AuditEvent.filter(action="auth.login", actor=user.id).count() == 1

    # a replayed callback (same state) is refused, and so is a forged state
    replay = await client.get(callback.removeprefix(BASE))
    assert replay.status_code == 401
    forged = await client.get("/api/v1/auth/callback?code=x&state=forged")
    assert forged.status_code == 401
    assert await AuditEvent.filter(action="auth.login", outcome="failure").count() == 2

    # an open redirect is not possible through returnTo
    evil = await client.get("/api/v1/auth/login?returnTo=//evil.example")
    async with httpx.AsyncClient() as browser:
        back = await browser.get(evil.headers["location"])
    done = await client.get(back.headers["location"].removeprefix(BASE))
    assert done.headers["location"] == "/"


async def test_oidc_not_configured_is_a_503_in_opencranes_shape(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/v1/auth/login")
    assert response.status_code == 503
    assert response.json() == {
        "error": "OIDC is not configured (AGENTPLANE_OIDC_ISSUER, _CLIENT_ID)",
        "code": "not_configured",
    }


async def test_admin_creates_a_member_who_signs_in_with_their_role(
    client: httpx.AsyncClient,
) -> None:
    csrf = await register(client)
    await make_tenant("acme")
    create = (
        "mutation($e: String!, $r: String!) { createUser(input: {email: $e, role: $r,"
        ' password: "member passphrase", tenant: "acme"}) { user { id email } } }'
    )
    made = await gql(client, create, csrf=csrf, e="dev@acme.io", r="operator")
    assert made["data"]["createUser"]["user"]["email"] == "dev@acme.io"
    # a duplicate, or an unknown role, is refused and leaves nobody behind
    assert codes(await gql(client, create, csrf=csrf, e="dev@acme.io", r="operator")) == [
        "CONFLICT"
    ]
    assert codes(await gql(client, create, csrf=csrf, e="x@acme.io", r="wizard")) == ["VALIDATION"]
    assert await User.filter(email="x@acme.io").count() == 0
    # the member signs in and acts as an operator of acme
    member = httpx.AsyncClient(transport=client._transport, base_url=BASE)
    login = await member.post(
        "/api/v1/auth/login", json={"email": "dev@acme.io", "password": "member passphrase"}
    )
    assert login.status_code == 200
    assert (await gql(member, VIEWER["query"]))["data"]["viewer"] == {
        "kind": "user",
        "role": "operator",
        "tenant": {"name": "acme"},
    }
    users = await gql(client, "{ users { email } }")
    assert sorted(u["email"] for u in users["data"]["users"]) == [
        "dev@acme.io",
        "owner@example.com",
    ]


async def test_failed_sign_ins_are_throttled_per_account(client: httpx.AsyncClient) -> None:
    await register(client)
    email = f"owner+{id(client)}@example.com"  # a fresh account key for the shared counter
    await User.filter(email="owner@example.com").update(email=email)
    for _ in range(10):
        wrong = await client.post("/api/v1/auth/login", json={"email": email, "password": "x" * 12})
        assert wrong.status_code == 401
    # the right password no longer helps until the window passes
    right = await client.post(
        "/api/v1/auth/login", json={"email": email, "password": OWNER["password"]}
    )
    assert right.status_code == 429 and right.json()["code"] == "rate_limited"
    # another account is unaffected
    other = await client.post(
        "/api/v1/auth/login", json={"email": "someone@else.io", "password": "x" * 12}
    )
    assert other.status_code == 401
