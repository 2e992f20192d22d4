"""Round trips to the database per scripted task, counted on the real connection, phase
by phase: submit (GraphQL), claim, run to completion. Pinned so a change that adds a
round trip to the hot write path shows up here (figure 3 of `make bench` is the
throughput)."""

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from starlette.applications import Starlette
from tortoise.connection import get_connection

from agentplane.core import sqlite_hop
from agentplane.core.config import Settings
from agentplane.http.app import create_app
from agentplane.models import Step, Task, TaskStatus
from agentplane.runtime.worker import Worker
from tests.support.database import truncate_all
from tests.support.factories import make_agent, make_tenant, make_token
from tests.support.graphql import GraphQLClient

EXECUTE_METHODS = ("execute_query", "execute_query_dict", "execute_insert", "execute_many")
SUBMIT = 'mutation($a: ID!) { submitTask(input: {agentId: $a, query: "2 + 2"}) { task { id } } }'
# Per phase, what it reads and writes (a lone statement runs in autocommit):
# submit: the agent with its tenant's phase and its budgets (one read), then one write: the
# task with its first step (seq 1) and the call's audit record (no transaction around the
# read: audit.carried); claim: the candidates (with their agents, saturated agents left
# out), then the compare-and-set update (seq and row returned) with its step; run: the
# tenant's phase with its budgets (the agent came with the claim, the pause flag is the
# claimed row's, and a fresh run's trace is not read), the provider step with its seq,
# cost and usage record, then the completion's CAS update (seq and row returned) with its
# step. A write of several statements is one round trip on both databases: on PostgreSQL
# one statement of data-modifying CTEs; on SQLite one hop to the connection's thread
# running BEGIN, the statements and COMMIT (core/sqlite_hop.py), counted here as one.
EXPECTED = {
    "sqlite": {"submit": 2, "claim": 2, "run": 3},
    "postgres": {"submit": 2, "claim": 2, "run": 3},
}


class Statements:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def take(self) -> list[str]:
        seen, self.seen = self.seen, []
        return seen


def _background() -> bool:
    """The periodic maintenance job, which also runs at startup."""
    task = asyncio.current_task()
    return task is not None and task.get_coro().__qualname__ == "run_forever"  # type: ignore[union-attr]


@pytest.fixture
async def quiet_app(settings: Settings) -> AsyncIterator[Starlette]:
    await truncate_all(settings.database_url)
    application = create_app(settings, run_worker=False)  # the test drives the worker
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch, quiet_app: Starlette) -> Iterator[Statements]:
    log = Statements()
    client_class = type(get_connection("default"))
    for name in EXECUTE_METHODS:
        original = getattr(client_class, name)

        def counting(self, query, *args, __original=original, **kwargs):  # type: ignore[no-untyped-def]
            if not _background():
                log.seen.append(query)
            return __original(self, query, *args, **kwargs)

        monkeypatch.setattr(client_class, name, counting)
    hop = sqlite_hop.run

    def one_hop(conn, work):  # type: ignore[no-untyped-def]
        if not _background():
            log.seen.append(f"hop: {work.__qualname__}")
        return hop(conn, work)

    monkeypatch.setattr(sqlite_hop, "run", one_hop)
    yield log


async def test_statements_per_scripted_task_are_pinned(
    quiet_app: Starlette, statements: Statements, settings: Settings
) -> None:
    # given an agent on the scripted model, and a token already used once
    tenant = await make_tenant("acme")
    agent = await make_agent(tenant)
    token = await make_token(tenant, "operator")
    transport = httpx.ASGITransport(app=quiet_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://agentplane.test") as c:
        gql = GraphQLClient(c)
        await gql.ok("{ viewer { kind } }", token)
        statements.take()
        # when a task is submitted, claimed and run
        task_id = (await gql.ok(SUBMIT, token, a=agent.id))["submitTask"]["task"]["id"]
    seen = statements.take()
    counts, text = {"submit": len(seen)}, list(seen)
    worker = Worker(settings)
    [(task, agent)] = await worker.claim_up_to(1)
    seen = statements.take()
    counts["claim"] = len(seen)
    text += seen
    assert task.id == task_id
    await worker._execute(task, agent)
    seen = statements.take()
    counts["run"] = len(seen)
    text += seen
    # then it completed with its whole trace...
    done = await Task.get(id=task_id)
    assert done.status == TaskStatus.COMPLETED and done.output
    kinds = [s.kind.value.lower() for s in await Step.filter(task_id=task_id).order_by("seq")]
    assert kinds == ["status_change", "status_change", "provider_call", "status_change"]
    # ...in the pinned number of statements per phase
    dialect = get_connection("default").capabilities.dialect
    assert counts == EXPECTED[dialect], (counts, text)
