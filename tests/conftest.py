"""Fixtures: a real database always (SQLite by default; PostgreSQL and Redis when
AGENTPLANE_DATABASE_URL / AGENTPLANE_REDIS_URL are set), the app with its lifespan,
and an HTTP client speaking to it in-process."""

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from starlette.applications import Starlette

from agentplane.core import db
from agentplane.core.config import Settings
from agentplane.http.app import create_app
from agentplane.resolvers.auth import Actor
from tests.support.database import truncate_all
from tests.support.graphql import GraphQLClient

# A fixed Fernet key: provider keys are encrypted at rest with it.
TEST_SECRET_KEY = "cw_0x689RpI-jtRR7oE8h_eQsUKOcDpAEk1GUHgUaWQ="


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("AGENTPLANE_DATABASE_URL") or (
        f"sqlite://{tmp_path_factory.mktemp('db') / 'agentplane-test.db'}"
    )
    asyncio.run(db.migrate(url))
    return url


@pytest.fixture(scope="session", autouse=True)
def fresh_rate_limit_counters() -> None:
    """Rate-limit and sign-in counters outlive a run in Redis: start from zero."""
    url = os.environ.get("AGENTPLANE_REDIS_URL")
    if not url:
        return
    client = redis.Redis.from_url(url)
    try:
        for key in client.scan_iter(match="agentplane-rl*"):
            client.delete(key)
    finally:
        client.close()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=os.environ.get("AGENTPLANE_REDIS_URL") or None,
        admin_token=None,
        scripted_delay_ms=1,
        task_timeout_s=30,
        # Tests poll hard; the rate-limit tests build apps with small limits of their own.
        rate_limit_per_min=1_000_000,
        secret_key=TEST_SECRET_KEY,
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    await truncate_all(settings.database_url)
    application = create_app(settings, run_worker=True)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://agentplane.test") as c:
        yield c


@pytest.fixture
def gql(client: httpx.AsyncClient) -> GraphQLClient:
    return GraphQLClient(client)


@pytest.fixture
def platform_admin() -> Actor:
    return Actor(kind="token", role="platform_admin", tenant_id=None)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


def pytest_report_header(config: Any) -> str:
    return (
        f"agentplane database: {os.environ.get('AGENTPLANE_DATABASE_URL') or 'sqlite (temp file)'}"
        f"; broker: {os.environ.get('AGENTPLANE_REDIS_URL') or 'memory'}"
    )


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Settings]:
    """Database and broker started, no worker: tests drive workers themselves."""
    await truncate_all(settings.database_url)
    application = create_app(settings, run_worker=False)
    async with application.router.lifespan_context(application):
        yield settings
