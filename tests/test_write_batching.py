"""Concurrent trace writes: each is all or nothing and committed before its caller hears
of it, whether it travels as one statement (PostgreSQL) or in a group commit (SQLite,
core/sqlite_hop.py); a failing or cancelled write never takes others with it."""

import asyncio
import sqlite3
from typing import Any

import asyncpg
import pytest
from tortoise.connection import get_connection
from tortoise.exceptions import IntegrityError

from agentplane.core.config import Settings
from agentplane.models import Step, StepKind, Task, TaskStatus
from agentplane.resolvers import traces
from tests.support.factories import make_agent, make_tenant


async def _new_task(agent: Any, i: int, task_id: str | None = None) -> Task:
    return await traces.create_task(
        tenant_id=agent.tenant_id,
        agent_id=agent.id,
        query=f"question {i}",
        metadata={},
        created_by="test",
        task_id=task_id,
    )


async def _committed_task_ids(database_url: str) -> set[str]:
    """The task rows another connection sees: what has been committed."""
    if database_url.startswith("sqlite"):
        other = sqlite3.connect(database_url.removeprefix("sqlite://"))
        try:
            return {row[0] for row in other.execute("SELECT id FROM task")}
        finally:
            other.close()
    other_pg = await asyncpg.connect(database_url.replace("postgres://", "postgresql://", 1))
    try:
        return {row["id"] for row in await other_pg.fetch("SELECT id FROM task")}
    finally:
        await other_pg.close()


async def test_a_failing_write_among_concurrent_ones_fails_alone(services: Settings) -> None:
    # given an agent with one task
    agent = await make_agent(await make_tenant("acme"))
    existing = await _new_task(agent, 0)
    # when 20 tasks are created at once and one of them reuses the existing task's ID
    results = await asyncio.gather(
        *(_new_task(agent, i, existing.id if i == 7 else None) for i in range(1, 21)),
        return_exceptions=True,
    )
    # then that one fails as a constraint violation, and the 19 others are written whole
    failed = [r for r in results if isinstance(r, BaseException)]
    assert len(failed) == 1 and isinstance(failed[0], IntegrityError), failed
    created = [r for r in results if isinstance(r, Task)]
    assert len(created) == 19
    for task in created:
        steps = await Step.filter(task_id=task.id).values_list("seq", "kind")
        assert steps == [(1, StepKind.STATUS_CHANGE)]
    # and the existing task kept its own row and its single first step
    again = await Task.get(id=existing.id)
    assert again.query == "question 0"
    assert await Step.filter(task_id=existing.id).count() == 1


async def test_a_write_is_committed_before_its_caller_hears_of_it(services: Settings) -> None:
    # given an agent
    agent = await make_agent(await make_tenant("acme"))
    # when tasks are created concurrently
    tasks = await asyncio.gather(*(_new_task(agent, i) for i in range(12)))
    # then another connection already sees every one of them
    assert {t.id for t in tasks} <= await _committed_task_ids(services.database_url)


async def test_a_cancelled_writer_does_not_strand_the_others(services: Settings) -> None:
    # given a running task
    agent = await make_agent(await make_tenant("acme"))
    task = await _new_task(agent, 0)
    await traces.transition(task.id, [TaskStatus.QUEUED], TaskStatus.RUNNING)
    # when 16 steps are appended at once and one writer is cancelled while waiting
    writers = [
        asyncio.create_task(traces.append_step(task, StepKind.AUDIT, {"n": i})) for i in range(16)
    ]
    await asyncio.sleep(0)
    writers[5].cancel()
    outcomes = await asyncio.gather(*writers, return_exceptions=True)
    # then every other writer got its step, and the trace has no gap
    written = [o for o in outcomes if isinstance(o, Step)]
    assert len(written) >= 15
    seqs = await Step.filter(task_id=task.id).order_by("seq").values_list("seq", flat=True)
    assert seqs == list(range(1, len(seqs) + 1))
    assert {s.seq for s in written} <= set(seqs)


async def test_sqlite_commits_concurrent_writes_together(services: Settings) -> None:
    conn = get_connection("default")
    if conn.capabilities.dialect != "sqlite":
        pytest.skip("group commit is SQLite's; PostgreSQL groups concurrent commits itself")
    # given a running task, and the statements the SQLite connection runs, as it runs them
    agent = await make_agent(await make_tenant("acme"))
    task = await _new_task(agent, 0)
    await traces.transition(task.id, [TaskStatus.QUEUED], TaskStatus.RUNNING)
    seen: list[str] = []
    raw = conn._connection  # type: ignore[attr-defined]  # aiosqlite's connection
    await raw.set_trace_callback(seen.append)
    try:
        # when 32 steps are appended at once
        await asyncio.gather(
            *(traces.append_step(task, StepKind.AUDIT, {"n": i}) for i in range(32))
        )
    finally:
        await raw.set_trace_callback(None)
    # then they were committed in fewer transactions than writes, each in its savepoint
    commits = [s for s in seen if s == "COMMIT"]
    assert 1 <= len(commits) < 32, seen
    assert sum(s.startswith("RELEASE") for s in seen) == 32
    seqs = await Step.filter(task_id=task.id).order_by("seq").values_list("seq", flat=True)
    assert seqs == list(range(1, 35))
