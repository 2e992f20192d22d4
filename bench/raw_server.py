"""The baseline: the same page of 50 tasks with their agents, from a minimal
Starlette + asyncpg endpoint serialised with orjson (no GraphQL, no ORM, no auth)."""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

PAGE_SQL = """
SELECT t.id, t.status, t.query, t.output, t.created_at, t.cost_usd,
       a.id AS agent_id, a.name AS agent_name, a.model AS agent_model
FROM task t JOIN agent a ON a.id = t.agent_id
WHERE t.tenant_id = $1 ORDER BY t.id DESC LIMIT 50
"""


def create_app() -> Starlette:
    dsn = os.environ["BENCH_RAW_DSN"]
    tenant_id = os.environ["BENCH_TENANT_ID"]
    state: dict[str, asyncpg.Pool] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state["pool"] = await asyncpg.create_pool(dsn, min_size=2, max_size=10)
        yield
        await state["pool"].close()

    async def tasks(request: Request) -> Response:
        async with state["pool"].acquire() as conn:
            rows = await conn.fetch(PAGE_SQL, tenant_id)
        body = [
            {
                "id": r["id"],
                "status": r["status"].upper(),
                "query": r["query"],
                "output": r["output"],
                "createdAt": r["created_at"].isoformat(),
                "costUsd": float(r["cost_usd"]),
                "agent": {"id": r["agent_id"], "name": r["agent_name"], "model": r["agent_model"]},
            }
            for r in rows
        ]
        return Response(orjson.dumps({"tasks": body}), media_type="application/json")

    return Starlette(routes=[Route("/tasks", tasks)], lifespan=lifespan)
