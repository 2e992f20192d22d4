"""Liveness, readiness, and the `agentplane` command line."""

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
from starlette.applications import Starlette

from agentplane.core.config import Settings
from agentplane.http.app import create_app
from agentplane.models import AccessToken, Tenant
from tests.support.server import live_server


async def test_healthz_and_readyz(client: httpx.AsyncClient) -> None:
    live = await client.get("/healthz")
    assert live.status_code == 200
    assert live.json()["status"] == "ok"
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}


async def _probe(app: Starlette) -> tuple[httpx.Response, httpx.Response]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
            return await client.get("/healthz"), await client.get("/readyz")


async def test_readyz_is_503_while_redis_is_unreachable(settings: Settings) -> None:
    unreachable = Settings(**{**settings.__dict__, "redis_url": "redis://127.0.0.1:1/0"})
    live, ready = await _probe(create_app(unreachable, run_worker=False))
    assert live.status_code == 200
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"] == "ok"
    assert ready.json()["checks"]["broker"].startswith("unavailable")


async def test_readyz_is_503_while_the_database_is_unreachable(settings: Settings) -> None:
    down = Settings(**{**settings.__dict__, "database_url": "postgres://postgres@127.0.0.1:1/x"})
    live, ready = await _probe(create_app(down, run_worker=False))
    assert live.status_code == 200
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"].startswith("unavailable")


def _cli(*args: str, database_url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AGENTPLANE_DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "agentplane", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_cli_token_create_prints_a_working_token_once(
    services: Settings, tmp_path: Path
) -> None:
    # when a token is created from the command line for a new tenant
    result = _cli(
        "token", "create", "--tenant", "acme", "--role", "tenant_admin",
        database_url=services.database_url, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    plaintext = result.stdout.strip().splitlines()[-1]
    assert plaintext.startswith("agp_")
    # then the tenant exists and the token row stores only its hash
    tenant = await Tenant.get(name="acme")
    token = await AccessToken.get(tenant_id=tenant.id)
    assert token.role == "tenant_admin"
    assert plaintext not in (token.token_hash, token.prefix)
    # an unknown role is a clear error, not a stack trace
    bad = _cli(
        "token", "create", "--tenant", "acme", "--role", "wizard",
        database_url=services.database_url, cwd=tmp_path,
    )  # fmt: skip
    assert bad.returncode != 0
    assert "Unknown role 'wizard'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_migrate_is_idempotent(database_url: str, tmp_path: Path) -> None:
    first = _cli("migrate", database_url=database_url, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    second = _cli("migrate", database_url=database_url, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "migrations applied" in second.stdout


def test_first_serve_on_an_empty_database_prints_an_admin_token(tmp_path: Path) -> None:
    # given a fresh embedded database and no AGENTPLANE_ADMIN_TOKEN
    url = f"sqlite://{tmp_path / 'fresh.db'}"
    with live_server(url, tmp_path, with_admin_token=False) as server:
        printed = [w for w in server.log().split() if w.startswith("agp_")]
        assert len(printed) == 1
        viewer = httpx.post(
            server.base_url + "/graphql",
            json={"query": "{ viewer { role kind } }"},
            headers={"Authorization": f"Bearer {printed[0]}"},
        ).json()
        assert viewer == {"data": {"viewer": {"role": "platform_admin", "kind": "token"}}}
    # a second start prints no new token
    with live_server(url, tmp_path, with_admin_token=False) as server:
        assert not [w for w in server.log().split() if w.startswith("agp_")]


async def test_graphiql_is_served_to_browsers_in_development(client: httpx.AsyncClient) -> None:
    page = await client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "GraphiQL" in page.text
    assert "wsClient(headers)" in page.text
    # the default header is ASCII: a browser refuses to send any other header value
    placeholder = re.search(r'const PLACEHOLDER = "([^"]*)"', page.text)
    assert placeholder is not None and placeholder.group(1).isascii()


async def test_graphiql_is_off_in_production(settings: Settings) -> None:
    production = Settings(**{**settings.__dict__, "env": "production"})
    app = create_app(production, run_worker=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
            page = await client.get("/graphql", headers={"Accept": "text/html"})
    assert "GraphiQL" not in page.text
    assert page.status_code in (400, 404, 405)
