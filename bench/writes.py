"""Figures 3 and 4: write throughput of the app vs the same rows by bare SQL."""

import asyncio
import json
import sqlite3
import time
import uuid
from collections.abc import Callable
from typing import Any

CONCURRENCY = 16
RAW_DDL = (
    "CREATE TABLE IF NOT EXISTS bench_task (id VARCHAR(40) PRIMARY KEY, status VARCHAR(16),"
    " query TEXT, output TEXT, last_seq INT)",
    "CREATE TABLE IF NOT EXISTS bench_step (id VARCHAR(40) PRIMARY KEY, task_id VARCHAR(40),"
    " seq INT, kind VARCHAR(16), payload TEXT)",
)


def _pg_dsn(url: str) -> str:
    return url.replace("postgres://", "postgresql://", 1)


class RawDB:
    """Bare SQL on the same database: asyncpg for PostgreSQL, sqlite3 for SQLite."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pg = url.startswith("postgres")
        self.pool: Any = None
        self.sqlite: sqlite3.Connection | None = None

    async def __aenter__(self) -> "RawDB":
        if self.pg:
            import asyncpg

            self.pool = await asyncpg.create_pool(_pg_dsn(self.url), min_size=4, max_size=16)
            for ddl in RAW_DDL:
                await self.pool.execute(ddl)
        else:
            self.sqlite = sqlite3.connect(self.url.removeprefix("sqlite://"), isolation_level=None)
            self.sqlite.execute("PRAGMA journal_mode=WAL")
            for ddl in RAW_DDL:
                self.sqlite.execute(ddl)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.pool is not None:
            await self.pool.close()
        if self.sqlite is not None:
            self.sqlite.close()

    async def transaction(self, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
        if self.pg:
            async with self.pool.acquire() as conn, conn.transaction():
                for sql, args in statements:
                    await conn.execute(sql, *args)
        else:
            assert self.sqlite is not None
            self.sqlite.execute("BEGIN")
            for sql, args in statements:
                self.sqlite.execute(
                    sql.replace("$1", "?")
                    .replace("$2", "?")
                    .replace("$3", "?")
                    .replace("$4", "?")
                    .replace("$5", "?"),
                    args,
                )
            self.sqlite.execute("COMMIT")
            await asyncio.sleep(0)


def _step(
    task_id: str, seq: int, kind: str, payload: dict[str, Any]
) -> tuple[str, tuple[Any, ...]]:
    return (
        "INSERT INTO bench_step (id, task_id, seq, kind, payload) VALUES ($1, $2, $3, $4, $5)",
        (uuid.uuid4().hex, task_id, seq, kind, json.dumps(payload)),
    )


async def raw_lifecycles_per_second(url: str, n: int) -> float:
    """A task's rows by bare SQL: 4 transactions (submit, claim, provider call, complete)."""
    async with RawDB(url) as raw:
        semaphore = asyncio.Semaphore(CONCURRENCY)

        async def lifecycle(i: int) -> None:
            task_id = uuid.uuid4().hex
            async with semaphore:
                await raw.transaction(
                    [
                        (
                            "INSERT INTO bench_task (id, status, query, last_seq)"
                            " VALUES ($1, $2, $3, $4)",
                            (task_id, "queued", f"bench task {i}", 1),
                        ),
                        _step(task_id, 1, "STATUS_CHANGE", {"from": None, "to": "queued"}),
                    ]
                )
                await raw.transaction(
                    [
                        (
                            "UPDATE bench_task SET status = $1, last_seq = $2 WHERE id = $3",
                            ("running", 2, task_id),
                        ),
                        _step(task_id, 2, "STATUS_CHANGE", {"from": "queued", "to": "running"}),
                    ]
                )
                await raw.transaction([_step(task_id, 3, "PROVIDER_CALL", {"text": "x"})])
                await raw.transaction(
                    [
                        (
                            "UPDATE bench_task SET status = $1, output = $2, last_seq = $3"
                            " WHERE id = $4",
                            ("completed", f"bench task {i}", 4, task_id),
                        ),
                        _step(task_id, 4, "STATUS_CHANGE", {"from": "running", "to": "completed"}),
                    ]
                )

        start = time.perf_counter()
        await asyncio.gather(*(lifecycle(i) for i in range(n)))
        return n / (time.perf_counter() - start)


async def raw_steps_per_second(url: str, seconds: float) -> float:
    async with RawDB(url) as raw:
        count = 0
        deadline = time.perf_counter() + seconds

        async def writer(w: int) -> None:
            nonlocal count
            seq = 0
            while time.perf_counter() < deadline:
                seq += 1
                await raw.transaction([_step(f"w{w}", seq, "PROVIDER_CALL", {"text": "chunk"})])
                count += 1

        start = time.perf_counter()
        await asyncio.gather(*(writer(w) for w in range(CONCURRENCY)))
        return count / (time.perf_counter() - start)


async def steps_per_second(url: str, seconds: float) -> float:
    """Through `traces.append_step` (seq allocation, usage metering, publish after commit)."""
    from decimal import Decimal

    from agentplane.core import db
    from agentplane.models import Agent, StepKind, Tenant
    from agentplane.resolvers import traces
    from agentplane.subscriptions.broker import make_broker, set_broker

    await db.init(url)
    broker = make_broker(None)
    await broker.start()
    set_broker(broker)
    try:
        tenant = await Tenant.create(name="steps", display_name="Steps")
        agent = await Agent.create(tenant_id=tenant.id, name="steps", model="scripted/echo")
        tasks = [
            await traces.create_task(
                tenant_id=tenant.id, agent_id=agent.id, query="q", metadata={}, created_by="bench"
            )
            for _ in range(CONCURRENCY)
        ]
        usage = traces.Usage(
            model="scripted/echo",
            input_tokens=10,
            output_tokens=20,
            latency_ms=1,
            cost_usd=Decimal("0.000001"),
            priced=True,
        )
        count = 0
        deadline = time.perf_counter() + seconds

        async def writer(task: Any) -> None:
            nonlocal count
            while time.perf_counter() < deadline:
                await traces.append_step(task, StepKind.PROVIDER_CALL, {"text": "chunk"}, usage)
                count += 1

        start = time.perf_counter()
        await asyncio.gather(*(writer(t) for t in tasks))
        return count / (time.perf_counter() - start)
    finally:
        await broker.close()
        set_broker(None)
        await db.close()


async def wait_all_terminal(
    url: str, n: int, timeout_s: float = 300, stop: Callable[[], bool] = lambda: False
) -> int:
    """Poll the database until `n` tasks are terminal (or `stop()`); the count of
    completed ones."""
    sql = "SELECT COUNT(*) FROM task WHERE status IN ('completed', 'failed', 'cancelled')"
    done_sql = "SELECT COUNT(*) FROM task WHERE status = 'completed'"
    deadline = time.monotonic() + timeout_s
    if url.startswith("postgres"):
        import asyncpg

        conn = await asyncpg.connect(_pg_dsn(url))
        try:
            while await conn.fetchval(sql) < n:
                if time.monotonic() > deadline or stop():
                    break
                await asyncio.sleep(0.02)
            return int(await conn.fetchval(done_sql))
        finally:
            await conn.close()
    lite = sqlite3.connect(url.removeprefix("sqlite://"))
    try:
        while lite.execute(sql).fetchone()[0] < n:
            if time.monotonic() > deadline or stop():
                break
            await asyncio.sleep(0.02)
        return int(lite.execute(done_sql).fetchone()[0])
    finally:
        lite.close()
