"""Figure 2: executing a large list through our Strawberry types (with the schema's
own extensions) vs plain graphql-core resolving the same objects."""

import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import graphql
import strawberry
from tortoise import Tortoise

from agentplane import models
from agentplane.core import db
from agentplane.schema import SCHEMA_EXTENSIONS
from agentplane.schema.execution import ExecutionContext, is_awaitable
from agentplane.schema.types import Step

QUERY = (
    "query Big { steps { id seq kind payload createdAt model inputTokens outputTokens"
    " latencyMs taskId costUsd } }"
)
DATA: list[models.Step] = []


@strawberry.type
class BenchQuery:
    @strawberry.field
    def steps(self) -> list[Step]:
        return DATA  # type: ignore[return-value]


def plain_schema() -> graphql.GraphQLSchema:
    from graphql import (
        GraphQLEnumType,
        GraphQLEnumValue,
        GraphQLField,
        GraphQLFloat,
        GraphQLID,
        GraphQLInt,
        GraphQLList,
        GraphQLNonNull,
        GraphQLObjectType,
        GraphQLScalarType,
        GraphQLString,
    )

    json_scalar = GraphQLScalarType("JSON", serialize=lambda v: v)
    datetime_scalar = GraphQLScalarType("DateTime", serialize=lambda v: v.isoformat())
    kind = GraphQLEnumType("StepKind", {k.name: GraphQLEnumValue(k) for k in models.StepKind})
    nn = GraphQLNonNull
    step = GraphQLObjectType(
        "Step",
        {
            "id": GraphQLField(nn(GraphQLID)),
            "seq": GraphQLField(nn(GraphQLInt)),
            "kind": GraphQLField(nn(kind)),
            "payload": GraphQLField(nn(json_scalar)),
            "createdAt": GraphQLField(nn(datetime_scalar), resolve=lambda o, _: o.created_at),
            "model": GraphQLField(GraphQLString),
            "inputTokens": GraphQLField(GraphQLInt, resolve=lambda o, _: o.input_tokens),
            "outputTokens": GraphQLField(GraphQLInt, resolve=lambda o, _: o.output_tokens),
            "latencyMs": GraphQLField(GraphQLInt, resolve=lambda o, _: o.latency_ms),
            "taskId": GraphQLField(nn(GraphQLID), resolve=lambda o, _: o.task_id),
            "costUsd": GraphQLField(
                GraphQLFloat, resolve=lambda o, _: None if o.cost_usd is None else float(o.cost_usd)
            ),
        },
    )
    query = GraphQLObjectType(
        "Query", {"steps": GraphQLField(nn(GraphQLList(nn(step))), resolve=lambda *_: DATA)}
    )
    return graphql.GraphQLSchema(query)


async def measure(items: int, rounds: int = 8) -> tuple[float, float]:
    """Milliseconds per execution: (ours, plain graphql-core); best of `rounds`."""
    await Tortoise.init(config=db.tortoise_config("sqlite://:memory:"))
    now = datetime.now(UTC)
    DATA[:] = [
        models.Step(
            id=f"stp_{i:08d}",
            task_id="tsk_bench",
            seq=i,
            kind=models.StepKind.PROVIDER_CALL,
            payload={"text": f"chunk {i}"},
            model="scripted/echo",
            input_tokens=12,
            output_tokens=34,
            latency_ms=5,
            cost_usd=Decimal("0.0000123"),
            created_at=now,
        )
        for i in range(items)
    ]
    ours = strawberry.Schema(
        query=BenchQuery, extensions=SCHEMA_EXTENSIONS, execution_context_class=ExecutionContext
    )
    plain = plain_schema()
    document = graphql.parse(QUERY)
    assert not graphql.validate(plain, document)

    async def run_ours() -> Any:
        result = await ours.execute(QUERY)
        assert not result.errors, result.errors
        return result.data

    def run_plain() -> Any:
        # graphql-core would take each Tortoise model for a coroutine: the same predicate.
        result = graphql.execute(plain, document, is_awaitable=is_awaitable)  # type: ignore[arg-type]
        assert not result.errors, result.errors  # type: ignore[union-attr]
        return result.data  # type: ignore[union-attr]

    assert await run_ours() == run_plain()
    best_ours = best_plain = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        await run_ours()
        best_ours = min(best_ours, time.perf_counter() - start)
        start = time.perf_counter()
        run_plain()
        best_plain = min(best_plain, time.perf_counter() - start)
    await Tortoise.close_connections()
    return best_ours * 1e3, best_plain * 1e3
