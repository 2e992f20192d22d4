"""The Koda runtime REST dialect, served from the same resolvers as GraphQL."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from agentplane.core.config import Settings
from agentplane.http.app import create_app
from agentplane.models import AccessToken, Task, User
from agentplane.resolvers.auth import hash_token
from agentplane.rest_compat import common
from tests.support.database import truncate_all
from tests.support.factories import PASSWORD, make_agent, make_tenant, make_token, make_user
from tests.support.rest import parse_sse, wait_terminal

ENVELOPE_KEYS = {"code", "category", "message", "retryable", "user_action"}


async def test_submit_poll_and_trace(client: httpx.AsyncClient) -> None:
    tenant = await make_tenant("acme")
    await make_agent(tenant, "atlas")
    token = await make_token(tenant, "operator")
    auth = {"Authorization": f"Bearer {token}"}
    created = await client.post(
        "/api/runtime/tasks",
        headers=auth,
        json={"agent_id": "atlas", "query": "audit auth", "metadata": {"source": "operator"}},
    )
    assert created.status_code == 202
    record = created.json()
    assert set(record) == {
        "id",
        "agent_id",
        "status",
        "created_at",
        "updated_at",
        "metadata",
        "output",
    }
    assert record["agent_id"] == "atlas" and record["metadata"] == {"source": "operator"}
    assert record["status"] == "queued" and record["output"] is None
    async with asyncio.timeout(10):
        while (await Task.get(id=record["id"])).status.value != "completed":
            await asyncio.sleep(0.02)
    polled = (await client.get(f"/api/runtime/tasks/{record['id']}", headers=auth)).json()
    assert polled["status"] == "completed" and polled["output"] == "audit auth"
    trace = (await client.get(f"/api/runtime/tasks/{record['id']}/trace", headers=auth)).json()
    assert [s["seq"] for s in trace["steps"]] == [1, 2, 3, 4]
    assert [s["kind"] for s in trace["steps"]][2] == "provider_call"


async def test_errors_use_the_operational_envelope(client: httpx.AsyncClient) -> None:
    tenant, other = await make_tenant("acme"), await make_tenant("other")
    token = await make_token(tenant, "operator")
    foreign = await make_agent(other, "theirs")
    auth = {"Authorization": f"Bearer {token}"}
    cases = [
        (await client.post("/api/runtime/tasks", headers=auth, content=b"{not json"), 400),
        (await client.post("/api/runtime/tasks", headers=auth, json={"query": "x"}), 400),
        (await client.post("/api/runtime/tasks", json={"agent_id": foreign.id, "query": "x"}), 401),
        (
            await client.post(
                "/api/runtime/tasks", headers=auth, json={"agent_id": foreign.id, "query": "x"}
            ),
            404,
        ),
        (await client.get("/api/runtime/tasks/tsk_missing", headers=auth), 404),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        assert set(response.json()) == ENVELOPE_KEYS
    assert await Task.filter(agent_id=foreign.id).count() == 0


async def test_viewer_may_not_submit(client: httpx.AsyncClient) -> None:
    tenant = await make_tenant("acme")
    agent = await make_agent(tenant)
    viewer = await make_token(tenant, "viewer")
    response = await client.post(
        "/api/runtime/tasks",
        headers={"Authorization": f"Bearer {viewer}"},
        json={"agent_id": agent.id, "query": "x"},
    )
    assert response.status_code == 403
    assert response.json()["code"] == "FORBIDDEN"
    assert await Task.all().count() == 0


async def test_ready(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/runtime/ready")
    assert response.status_code == 200
    assert response.json()["status"] == "ready"


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_documented_curl_example_with_the_session_cookie(client: httpx.AsyncClient) -> None:
    """The runtime doc's `curl -X POST …/api/runtime/tasks` example, verbatim but for the
    credentials: the session cookie Koda's login sets and, as on every cookie-authenticated
    write, the session's CSRF token."""
    tenant = await make_tenant("acme")
    await make_agent(tenant, "atlas")
    await make_user("op@acme.test", "operator", tenant)
    login = await client.post(
        "/api/control-plane/auth/login",
        json={"identifier": "op@acme.test", "password": PASSWORD},
    )
    cookie, csrf = login.cookies["koda_operator_session"], login.json()["csrf_token"]
    client.cookies.clear()
    documented = b"""{
"agent_id": "atlas",
"query": "Audit the auth service for CSP violations.",
"metadata": { "source": "operator" }
}"""
    headers = {"Cookie": f"koda_operator_session={cookie}", "Content-Type": "application/json"}

    forged = await client.post("/api/runtime/tasks", headers=headers, content=documented)
    assert forged.status_code == 403 and set(forged.json()) == ENVELOPE_KEYS
    assert "X-CSRF-Token" in forged.json()["message"]
    assert forged.json()["user_action"] == (
        "Send the session's csrf_token (from login or auth/status) as X-CSRF-Token."
    )
    assert await Task.all().count() == 0

    response = await client.post(
        "/api/runtime/tasks", headers={**headers, "X-CSRF-Token": csrf}, content=documented
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["id"].startswith("tsk_") and body["agent_id"] == "atlas"
    assert body["status"] == "queued" and body["metadata"] == {"source": "operator"}
    done = await wait_terminal(body["id"])
    assert done.output == "Audit the auth service for CSP violations."
    # reads need no CSRF token; an access token in the cookie is no session
    read = await client.get(f"/api/runtime/tasks/{body['id']}", headers=headers)
    assert read.status_code == 200 and read.json()["status"] == "completed"
    token = await make_token(tenant, "operator")
    stale = await client.get(
        "/api/runtime/agents", headers={"Cookie": f"koda_operator_session={token}"}
    )
    assert stale.status_code == 401


async def test_control_plane_agent_lifecycle(client: httpx.AsyncClient) -> None:
    tenant = await make_tenant("acme")
    auth = _auth(await make_token(tenant, "operator"))
    cp = "/api/control-plane/agents"
    created = await client.post(
        cp, headers=auth, json={"id": "atlas", "display_name": "Atlas", "status": "active"}
    )
    assert created.status_code == 201, created.text
    atlas = created.json()
    assert (atlas["id"], atlas["display_name"], atlas["status"]) == ("atlas", "Atlas", "active")
    assert atlas["agentplane_id"].startswith("agt_") and atlas["version"] == 1

    listed = (await client.get(cp, headers=auth)).json()
    assert [a["id"] for a in listed["agents"]] == ["atlas"] and listed["total"] == 1
    runtime = (await client.get("/api/runtime/agents/atlas", headers=auth)).json()
    assert runtime["publication"] == {"version": 1, "published_at": None}

    patched = await client.patch(
        cp + "/atlas", headers=auth, json={"display_name": "Atlas 2", "system_prompt": "Be brief."}
    )
    assert patched.status_code == 200 and patched.json()["display_name"] == "Atlas 2"

    checks = (await client.get(cp + "/atlas/publish-checks", headers=auth)).json()
    assert checks["ready"] is True
    assert {c["id"] for c in checks["checks"]} >= {"model", "tools", "system_prompt"}
    valid = (await client.post(cp + "/atlas/validate", headers=auth)).json()
    assert valid == {"agent_id": "atlas", "valid": True, "errors": [], "warnings": []}

    published = (await client.post(cp + "/atlas/publish", headers=auth)).json()
    assert published["version"] == 2 and published["published_at"] is not None

    paused = await client.post(cp + "/atlas/pause", headers=auth)
    assert paused.json()["status"] == "paused"
    refused = await client.post(
        "/api/runtime/tasks", headers=auth, json={"agent_id": "atlas", "query": "hi"}
    )
    assert refused.status_code == 400 and refused.json()["code"] == "VALIDATION"
    assert (await client.post(cp + "/atlas/activate", headers=auth)).json()["status"] == "active"

    clone = await client.post(cp + "/atlas/clone", headers=auth, json={"id": "atlas-copy"})
    assert clone.status_code == 201
    assert clone.json()["status"] == "draft" and clone.json()["system_prompt"] == "Be brief."
    # without a body: a clone with defaults, under the next free "-copy" name
    defaults = [(await client.post(cp + "/atlas/clone", headers=auth)) for _ in range(2)]
    assert [(r.status_code, r.json()["id"]) for r in defaults] == [
        (201, "atlas-copy-2"),
        (201, "atlas-copy-3"),
    ]

    deleted = await client.delete(cp + "/atlas", headers=auth)
    assert deleted.status_code == 200 and deleted.json()["status"] == "archived"
    assert (await client.get(cp + "/atlas", headers=auth)).status_code == 404
    again = await client.post(cp, headers=auth, json={"id": "atlas"})
    assert again.status_code == 201 and again.json()["agentplane_id"] != atlas["agentplane_id"]


async def test_control_plane_errors(client: httpx.AsyncClient) -> None:
    tenant, other = await make_tenant("acme"), await make_tenant("other")
    await make_agent(other, "theirs")
    auth = _auth(await make_token(tenant, "operator"))
    viewer = _auth(await make_token(tenant, "viewer"))
    cp = "/api/control-plane/agents"
    await client.post(cp, headers=auth, json={"id": "atlas"})
    cases = [
        (await client.post(cp, headers=auth, content=b"{"), 400, "VALIDATION"),
        (await client.post(cp, headers=auth, json={"display_name": "x"}), 400, "VALIDATION"),
        (await client.post(cp, headers=auth, json={"id": "a", "model": "nope/x"}), 400, None),
        (await client.post(cp, headers=auth, json={"id": "atlas"}), 409, "CONFLICT"),
        (await client.get(cp + "/theirs", headers=auth), 404, "NOT_FOUND"),
        (await client.post(cp + "/nobody/publish", headers=auth), 404, "NOT_FOUND"),
        (await client.get(cp), 401, "UNAUTHENTICATED"),
        (await client.get(cp, headers={"Authorization": "Bearer agp_wrong"}), 401, None),
        (await client.post(cp, headers=viewer, json={"id": "mine"}), 403, "FORBIDDEN"),
        (await client.delete(cp + "/atlas", headers=viewer), 403, "FORBIDDEN"),
        (await client.get(cp + "?limit=0", headers=auth), 400, "VALIDATION"),
    ]
    for response, status, code in cases:
        assert response.status_code == status, (response.request.url, response.text)
        assert set(response.json()) == ENVELOPE_KEYS
        assert code is None or response.json()["code"] == code
    assert (await client.get(cp + "/atlas", headers=auth)).json()["status"] == "active"


async def test_task_events_stream_replays_resumes_and_ends(client: httpx.AsyncClient) -> None:
    tenant = await make_tenant("acme")
    await make_agent(tenant, "atlas")
    auth = _auth(await make_token(tenant, "operator"))
    task = (
        await client.post(
            "/api/runtime/tasks", headers=auth, json={"agent_id": "atlas", "query": "hello"}
        )
    ).json()
    response = await client.get(f"/api/runtime/tasks/{task['id']}/events", headers=auth)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    assert [e["id"] for e in events] == [str(e["data"]["seq"]) for e in events]
    assert [e["data"]["seq"] for e in events] == list(range(1, len(events) + 1))
    assert all(e["event"] == "step" for e in events)
    assert events[-1]["data"]["payload"]["to"] == "completed"

    resumed = await client.get(
        f"/api/runtime/tasks/{task['id']}/events", headers={**auth, "Last-Event-ID": "2"}
    )
    assert [e["data"]["seq"] for e in parse_sse(resumed.text)] == list(range(3, len(events) + 1))
    by_query = await client.get(f"/api/runtime/tasks/{task['id']}/events?after_seq=3", headers=auth)
    assert parse_sse(by_query.text)[0]["data"]["seq"] == 4

    missing = await client.get("/api/runtime/tasks/tsk_nope/events", headers=auth)
    assert missing.status_code == 404 and set(missing.json()) == ENVELOPE_KEYS
    bad = await client.get(
        f"/api/runtime/tasks/{task['id']}/events", headers={**auth, "Last-Event-ID": "x"}
    )
    assert bad.status_code == 400


async def test_task_events_send_heartbeat_comments_while_idle(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a worker the task stays queued: the stream replays step 1, then stays open
    with `: ping` comments (every 15 s; shortened here) until the client goes away."""
    monkeypatch.setattr(common, "SSE_HEARTBEAT_S", 0.05)
    await truncate_all(settings.database_url)
    app = create_app(settings, run_worker=False)
    async with app.router.lifespan_context(app):
        tenant = await make_tenant("acme")
        await make_agent(tenant, "atlas")
        token = await make_token(tenant, "operator")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            task = (
                await client.post(
                    "/api/runtime/tasks",
                    headers=_auth(token),
                    json={"agent_id": "atlas", "query": "wait"},
                )
            ).json()
        body = bytearray()
        pinged, gone = asyncio.Event(), asyncio.Event()

        async def receive() -> dict[str, object]:
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, object]) -> None:
            body.extend(message.get("body", b""))  # type: ignore[arg-type]
            if b": ping" in body:
                pinged.set()

        path = f"/api/runtime/tasks/{task['id']}/events"
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [(b"authorization", f"Bearer {token}".encode())],
            "server": ("t", 80),
            "client": ("127.0.0.1", 50000),
        }
        stream = asyncio.create_task(app(scope, receive, send))  # type: ignore[arg-type]
        await asyncio.wait_for(pinged.wait(), 5)
        gone.set()
        await asyncio.wait_for(stream, 5)
    events = parse_sse(body.decode())
    assert [e["id"] for e in events] == ["1"]  # the replayed step; pings are comments
    assert events[0]["data"]["payload"] == {"from": None, "to": "queued"}
    assert body.count(b": ping") >= 1


async def test_an_agent_name_never_reads_as_an_id(client: httpx.AsyncClient) -> None:
    tenant = await make_tenant("acme")
    auth = _auth(await make_token(tenant, "operator"))
    response = await client.post(
        "/api/control-plane/agents", headers=auth, json={"id": "agt_lookalike"}
    )
    assert response.status_code == 400 and response.json()["code"] == "VALIDATION"
    assert "agt_" in response.json()["message"]


# ---------------------------------------------------------------- control-plane auth
AUTH = "/api/control-plane/auth"
OWNER = {"email": "owner@example.com", "password": PASSWORD, "username": "owner"}


def _bearer(body: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {body['session_token']}"}


async def test_owner_registration_sessions_status_and_logout(client: httpx.AsyncClient) -> None:
    # given an installation without accounts
    status = (await client.get(f"{AUTH}/status")).json()
    assert (status["has_owner"], status["bootstrap_required"], status["authenticated"]) == (
        False,
        True,
        False,
    )

    # when the owner registers
    registered = await client.post(f"{AUTH}/register-owner", json=OWNER)
    assert registered.status_code == 201, registered.text
    owner = registered.json()
    assert set(owner) == {"ok", "operator", "session_token", "csrf_token", "auth"}
    assert owner["operator"]["email"] == "owner@example.com"
    assert owner["operator"]["role"] == "platform_admin"
    assert owner["auth"]["authenticated"] and owner["auth"]["has_owner"]
    cookie = registered.headers["set-cookie"]
    assert "koda_operator_session=" in cookie and "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    client.cookies.clear()

    # then registration is closed
    again = await client.post(f"{AUTH}/register-owner", json={**OWNER, "email": "x@example.com"})
    assert again.status_code == 409 and set(again.json()) == ENVELOPE_KEYS
    assert await User.all().count() == 1

    # the session token is a bearer credential, as Koda's dashboard sends it
    status = (await client.get(f"{AUTH}/status", headers=_bearer(owner))).json()
    assert status["session_subject"] == "operator" and status["csrf_token"] == owner["csrf_token"]
    wrong = await client.post(
        f"{AUTH}/login", json={"identifier": "owner@example.com", "password": "wrong password"}
    )
    assert wrong.status_code == 401 and set(wrong.json()) == ENVELOPE_KEYS
    second = (
        await client.post(
            f"{AUTH}/login", json={"identifier": "OWNER@example.com", "password": PASSWORD}
        )
    ).json()
    client.cookies.clear()
    sessions = (await client.get(f"{AUTH}/sessions", headers=_bearer(second))).json()["items"]
    assert len(sessions) == 2
    assert [s["is_current"] for s in sessions] == [True, False]
    revoked = await client.delete(
        f"{AUTH}/sessions/{sessions[1]['session_id']}", headers=_bearer(second)
    )
    assert revoked.json() == {"ok": True}
    assert (await client.get(f"{AUTH}/status", headers=_bearer(owner))).json()[
        "authenticated"
    ] is False
    missing = await client.delete(f"{AUTH}/sessions/ses_missing", headers=_bearer(second))
    assert missing.status_code == 404

    # logout by cookie needs the CSRF token, like every cookie-authenticated write
    jar = {"Cookie": f"koda_operator_session={second['session_token']}"}
    forged = await client.post(f"{AUTH}/logout", headers=jar)
    assert forged.status_code == 403
    assert (await client.get(f"{AUTH}/status", headers=jar)).json()["authenticated"]
    out = await client.post(f"{AUTH}/logout", headers={**jar, "X-CSRF-Token": second["csrf_token"]})
    assert out.json() == {"ok": True} and 'koda_operator_session=""' in out.headers["set-cookie"]
    assert (await client.get(f"{AUTH}/status", headers=jar)).json()["authenticated"] is False
    assert (await client.get(f"{AUTH}/sessions", headers=jar)).status_code == 401
    bogus = await client.get(f"{AUTH}/sessions", headers={"Authorization": "Bearer nope"})
    assert bogus.status_code == 401 and set(bogus.json()) == ENVELOPE_KEYS


async def test_api_tokens_act_for_the_signed_in_user(client: httpx.AsyncClient) -> None:
    tenant = await make_tenant("acme")
    await make_agent(tenant, "atlas")
    await make_user("op@acme.test", "operator", tenant)
    signed_in = (
        await client.post(
            f"{AUTH}/login", json={"identifier": "op@acme.test", "password": PASSWORD}
        )
    ).json()
    client.cookies.clear()
    me = _bearer(signed_in)

    created = await client.post(
        f"{AUTH}/tokens", headers=me, json={"token_name": "ci", "expires_in_days": 7}
    )
    assert created.status_code == 201, created.text
    token = created.json()
    assert token["token"].startswith("agp_") and token["token_name"] == "ci"
    assert (token["role"], token["tenant_id"], token["scopes"]) == (
        "operator",
        tenant.id,
        ["control_plane"],
    )
    expires = datetime.fromisoformat(token["expires_at"]) - datetime.now(UTC)
    assert timedelta(days=6) < expires <= timedelta(days=7)
    agents = await client.get("/api/runtime/agents", headers=_auth(token["token"]))
    assert [a["id"] for a in agents.json()["agents"]] == ["atlas"]

    listed = (await client.get(f"{AUTH}/tokens", headers=me)).json()
    assert [(t["id"], t["revoked_at"]) for t in listed["items"]] == [(token["id"], None)]
    bad = await client.post(f"{AUTH}/tokens", headers=me, json={"scopes": ["admin"]})
    assert bad.status_code == 400 and set(bad.json()) == ENVELOPE_KEYS

    # a token without a user has no personal tokens; an operator revokes no one else's
    service = await make_token(tenant, "operator")
    assert (await client.get(f"{AUTH}/tokens", headers=_auth(service))).status_code == 403
    assert (await client.post(f"{AUTH}/tokens", headers=_auth(service))).status_code == 403
    other = await AccessToken.get(token_hash=hash_token(service))
    denied = await client.delete(f"{AUTH}/tokens/{other.id}", headers=me)
    assert denied.status_code == 403
    assert (await AccessToken.get(id=other.id)).revoked_at is None

    revoked = await client.delete(f"{AUTH}/tokens/{token['id']}", headers=me)
    assert revoked.json() == {"ok": True}
    gone = await client.get("/api/runtime/agents", headers=_auth(token["token"]))
    assert gone.status_code == 401
    listed = (await client.get(f"{AUTH}/tokens", headers=me)).json()
    assert listed["items"][0]["revoked_at"] is not None
    assert (await client.get(f"{AUTH}/tokens")).status_code == 401


async def test_a_platform_caller_is_told_to_use_ids(client: httpx.AsyncClient) -> None:
    tenant = await make_tenant("acme")
    agent = await make_agent(tenant, "atlas")
    owner = _auth(await make_token(None, "platform_admin"))
    body = {"agent_id": "atlas", "query": "hi"}
    by_name = await client.post("/api/runtime/tasks", headers=owner, json=body)
    assert by_name.status_code == 404 and "agt_" in by_name.json()["message"]
    by_id = await client.post(
        "/api/runtime/tasks", headers=owner, json={**body, "agent_id": agent.id}
    )
    assert by_id.status_code == 202, by_id.text
