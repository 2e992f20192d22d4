"""`submitTask` on the HTTP fast path answers as Strawberry's view does, with the same
side effects: the task and its first step, the audit records (in the change's
transaction), the operation's metrics, the rate-limit count, the queue announcement."""

import asyncio
import itertools
import re
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from tortoise.connection import get_connection

from agentplane.core.config import Settings
from agentplane.http.app import create_app
from agentplane.models import (
    AgentState,
    AuditEvent,
    Budget,
    Step,
    StepKind,
    Task,
    Tenant,
    TenantPhase,
)
from agentplane.models.budget import current_window
from agentplane.resolvers import audit
from agentplane.schema import mutation
from agentplane.subscriptions import events
from agentplane.subscriptions.broker import get_broker
from tests.support.database import truncate_all
from tests.support.factories import make_agent, make_tenant, make_token
from tests.support.fast_path import NEW, SAME_HEADERS, Answer, graphql_view, sample, send
from tests.test_audit_atomic import audit_refuses

SUBMIT = (
    "mutation Submit($a: ID!, $q: String!) { submitTask(input: {agentId: $a, query: $q})"
    " { task { id } } }"
)
ALL_FIELDS = (
    "mutation Submit($a: ID!, $q: String!, $m: JSON) {"
    " submitTask(input: {agentId: $a, query: $q, metadata: $m}) { __typename"
    " task { __typename id status query output error metadata attempt createdAt updatedAt"
    " startedAt finishedAt statusReason workerId isTerminal costUsd } } }"
)
WHOLE_INPUT = (
    "mutation Submit($input: SubmitTaskInput!) { done: submitTask(input: $input) {"
    " task { ...T } } } fragment T on Task { id status isTerminal }"
)
# Each answer names a task of its own, made at its own time.
VARYING = re.compile(rb'"(id|createdAt|updatedAt)":"[^"]*"')


@pytest.fixture
async def quiet_app(settings: Settings) -> AsyncIterator[Starlette]:
    """No worker: submitted tasks stay as the submit left them."""
    await truncate_all(settings.database_url)
    application = create_app(settings, run_worker=False)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def quiet_client(quiet_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=quiet_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://agentplane.test") as c:
        yield c


def _audit_row(event: AuditEvent, task_id: str | None) -> tuple[Any, ...]:
    def same(value: Any) -> Any:
        return "<task>" if task_id is not None and value == task_id else value

    return (
        event.actor,
        event.actor_kind,
        event.role,
        event.tenant_id,
        event.action,
        same(event.resource),
        event.outcome,
        event.request_id,
        same(event.task_id),
        event.details,
    )


def _task_row(task: Task) -> tuple[Any, ...]:
    return (
        task.tenant_id,
        task.agent_id,
        task.query,
        task.metadata,
        task.created_by,
        task.status,
        task.attempt,
        task.last_seq,
        task.history,
    )


class Sent:
    """One request's answer and everything it left behind."""

    def __init__(self, answer: Answer, audit: list[tuple[Any, ...]], task: Any, published: Any):
        self.answer = answer
        self.audit = audit
        self.task = task  # (row, step kinds) of the task it made, or None
        self.published = published  # what the queue channel heard

    def normalised(self) -> bytes:
        return VARYING.sub(rb'"\1":"*"', self.answer.body)


async def _send(
    client: httpx.AsyncClient,
    app: Starlette,
    body: object,
    token: str,
    accept: str | None,
    *,
    fast: bool,
) -> Sent:
    await audit.flush()
    await AuditEvent.all().delete()
    tasks_before = set(await Task.all().values_list("id", flat=True))
    async with get_broker().subscribe(events.QUEUE_CHANNEL) as queue:
        answer = await send(client, graphql_view(app), body, token, accept, fast=fast)
        made = [t for t in await Task.all() if t.id not in tasks_before]
        published = await asyncio.wait_for(queue.get(), 5) if made else None
    await audit.flush()
    task_id = made[0].id if made else None
    rows = [_audit_row(e, task_id) for e in await AuditEvent.all().order_by("id")]
    task = None
    if made:
        assert len(made) == 1
        kinds = await Step.filter(task_id=made[0].id).order_by("seq").values_list("kind", flat=True)
        task = (_task_row(made[0]), list(kinds))
        assert published == {"task_id": made[0].id}
        published = "<task>"
    return Sent(answer, rows, task, published)


async def compare_submit(
    client: httpx.AsyncClient,
    app: Starlette,
    body: object,
    token: str,
    accept: str | None = None,
) -> Sent:
    """The same request on both paths: the same status, headers and body bytes (but for
    the new task's ID and times), the same audit records, task row, trace, announcement."""
    fast = await _send(client, app, body, token, accept, fast=True)
    general = await _send(client, app, body, token, accept, fast=False)
    assert not general.answer.fast
    assert fast.answer.status == general.answer.status
    assert fast.normalised() == general.normalised()
    if fast.task is None:  # nothing varies: the very same bytes
        fast.answer.same_as(general.answer)
    assert fast.answer.headers.keys() == general.answer.headers.keys()
    for name in SAME_HEADERS:
        if name != "content-length" or fast.task is None:
            assert fast.answer.headers.get(name) == general.answer.headers.get(name), name
    assert (fast.audit, fast.task, fast.published) == (
        general.audit,
        general.task,
        general.published,
    )
    return fast


async def test_submit_task_is_answered_by_the_fast_path_as_by_the_general_path(
    quiet_app: Starlette, quiet_client: httpx.AsyncClient
) -> None:
    # given an operator's agent
    acme = await make_tenant("acme")
    agent = await make_agent(acme)
    token = await make_token(acme, "operator")
    cases: list[tuple[str, dict[str, Any]]] = [
        (SUBMIT, {"a": agent.id, "q": "hello"}),
        (ALL_FIELDS, {"a": agent.id, "q": "with metadata", "m": {"k": [1, "x"], "n": None}}),
        (ALL_FIELDS, {"a": agent.id, "q": "no metadata"}),
        (WHOLE_INPUT, {"input": {"agentId": agent.id, "query": "an input variable"}}),
        (
            'mutation { submitTask(input: {agentId: "AGENT", query: "inline"}) { task { id } } }',
            {},
        ),
    ]
    for accept in (None, NEW):
        for query, variables in cases:
            # when a submit is sent over HTTP
            body = {"query": query.replace("AGENT", agent.id), "variables": variables or None}
            sent = await compare_submit(quiet_client, quiet_app, body, token, accept)
            # then the fast path answered it, as Strawberry's view does, and queued a task
            assert sent.answer.fast, query
            assert sent.answer.status == 200 and b'"errors"' not in sent.answer.body
            assert sent.task is not None and sent.task[1] == [StepKind.STATUS_CHANGE]
            assert [(row[4], row[6]) for row in sent.audit] == [("task.submit", "success")]
    answered = orjson.loads(sent.answer.body)["data"]["submitTask"]["task"]["id"]
    assert (await Task.get(id=answered)).query == "inline"


async def test_submit_task_metrics_and_rate_limit_are_the_same_on_both_paths(
    quiet_app: Starlette, quiet_client: httpx.AsyncClient
) -> None:
    acme = await make_tenant("acme")
    agent = await make_agent(acme)
    token = await make_token(acme, "operator")
    view = graphql_view(quiet_app)
    ok = {"query": SUBMIT, "variables": {"a": agent.id, "q": "hi"}}
    refused = {"query": SUBMIT, "variables": {"a": "agt_nope", "q": "hi"}}
    for body, outcome in ((ok, "ok"), (refused, "error")):
        for fast in (True, False):
            labels = {"type": "mutation", "operation": "Submit"}
            ops = sample("agentplane_graphql_operations_total", **labels, outcome=outcome)
            latency = sample("agentplane_graphql_operation_duration_seconds_count", **labels)
            http = sample(
                "agentplane_http_requests_total", route="/graphql", method="POST", status="200"
            )
            answer = await send(quiet_client, view, body, token, fast=fast)
            assert answer.fast is fast
            assert sample("agentplane_graphql_operations_total", **labels, outcome=outcome) == (
                ops + 1
            )
            assert sample("agentplane_graphql_operation_duration_seconds_count", **labels) == (
                latency + 1
            )
            assert sample(
                "agentplane_http_requests_total", route="/graphql", method="POST", status="200"
            ) == (http + 1)
    # and each path counts the request once against the caller's bucket
    left = [
        int((await send(quiet_client, view, ok, token, fast=fast)).headers["x-ratelimit-remaining"])
        for fast in (False, True, False, True)
    ]
    assert [a - b for a, b in itertools.pairwise(left)] == [1, 1, 1]


async def test_every_submit_task_error_is_the_same_on_both_paths(
    quiet_app: Starlette, quiet_client: httpx.AsyncClient
) -> None:
    acme, other = await make_tenant("acme"), await make_tenant("other")
    agent = await make_agent(acme)
    paused = await make_agent(acme, "paused", state=AgentState.PAUSED)
    archived = await make_agent(acme, "archived", state=AgentState.ARCHIVED)
    foreign = await make_agent(other, "theirs")
    broke = await make_tenant("broke")
    broke_agent = await make_agent(broke, "spender")
    await Budget.create(
        scope="tenant",
        scope_key=f"tenant:{broke.id}",
        tenant_id=broke.id,
        limit_units=1,
        spent_units=1,
        period=current_window(),
    )
    frozen = await make_tenant("frozen")
    frozen_agent = await make_agent(frozen, "idle")
    await Tenant.filter(id=frozen.id).update(phase=TenantPhase.SUSPENDED)
    operator = await make_token(acme, "operator")
    viewer = await make_token(acme, "viewer")
    platform = await make_token(None, "platform_admin")
    frozen_operator = await make_token(frozen, "operator")
    broke_operator = await make_token(broke, "operator")

    def submit(agent_id: object, query: object = "hi", text: str = SUBMIT) -> dict[str, Any]:
        return {"query": text, "variables": {"a": agent_id, "q": query}}

    cases: list[tuple[str, dict[str, Any], str, str | None, bool]] = [
        # (what, body, token, expected code, answered by the fast path)
        ("no such agent", submit("agt_nope"), operator, "NOT_FOUND", True),
        ("an over-long agent ID", submit("agt_" + "x" * 300), operator, "NOT_FOUND", True),
        ("an archived agent", submit(archived.id), operator, "NOT_FOUND", True),
        ("another tenant's agent", submit(foreign.id), operator, "NOT_FOUND", True),
        ("a paused agent", submit(paused.id), operator, "VALIDATION", True),
        ("an empty query", submit(agent.id, "  "), operator, "VALIDATION", True),
        ("an oversized query", submit(agent.id, "x" * 100_001), operator, "VALIDATION", True),
        (
            "a suspended tenant's token",
            submit(frozen_agent.id),
            frozen_operator,
            "TENANT_SUSPENDED",
            True,
        ),
        ("into a suspended tenant", submit(frozen_agent.id), platform, "TENANT_SUSPENDED", True),
        ("a spent budget", submit(broke_agent.id), broke_operator, "BUDGET_EXCEEDED", True),
        ("no permission", submit(agent.id), viewer, "FORBIDDEN", True),
        (
            "an ID of the wrong type",
            submit([agent.id]),
            operator,
            "GRAPHQL_VALIDATION_FAILED",
            False,
        ),
        (
            "a query of the wrong type",
            submit(agent.id, 42),
            operator,
            "GRAPHQL_VALIDATION_FAILED",
            False,
        ),
        ("a missing variable", {"query": SUBMIT}, operator, "GRAPHQL_VALIDATION_FAILED", False),
        (
            "metadata not an object",
            {"query": ALL_FIELDS, "variables": {"a": agent.id, "q": "hi", "m": [1]}},
            operator,
            "VALIDATION",
            True,
        ),
        (
            "an uncovered payload field",
            submit(agent.id, text=SUBMIT.replace("{ id }", "{ id agent { id } }")),
            viewer,
            "FORBIDDEN",
            False,
        ),
        (
            "two mutations",
            {
                "query": SUBMIT.replace("{ task { id } } }", "{ task { id } } again:")
                + " submitTask(input: {agentId: $a, query: $q}) { task { id } } }",
                "variables": {"a": agent.id, "q": "hi"},
            },
            viewer,
            "FORBIDDEN",
            False,
        ),
    ]
    for accept in ("application/json", NEW):
        for what, body, token, code, fast in cases:
            count = await Task.all().count()
            sent = await compare_submit(quiet_client, quiet_app, body, token, accept)
            assert sent.answer.fast is fast, what
            assert await Task.all().count() == count, what  # nothing was queued
            errors = orjson.loads(sent.answer.body)["errors"]
            if code is not None:
                assert errors[0]["extensions"]["code"] == code, (what, errors)
            assert errors[0]["extensions"]["requestId"] == "req_compare", what
            if fast:  # refused by the resolver, which recorded why
                assert [row[4] for row in sent.audit] == ["task.submit"], what


async def test_a_submit_whose_audit_record_fails_is_rolled_back_on_both_paths(
    quiet_app: Starlette, quiet_client: httpx.AsyncClient
) -> None:
    # given an audit table that refuses `task.submit` records
    acme = await make_tenant("acme")
    agent = await make_agent(acme)
    token = await make_token(acme, "operator")
    body = {"query": SUBMIT, "variables": {"a": agent.id, "q": "never"}}
    async with audit_refuses("task.submit"):
        # when a task is submitted on each path
        sent = await compare_submit(quiet_client, quiet_app, body, token)
    # then the fast path answered, the task was rolled back with its record, nothing was
    # announced, and the operation was recorded as failed by the safety net
    assert sent.answer.fast and sent.task is None and sent.published is None
    assert orjson.loads(sent.answer.body)["errors"][0]["extensions"]["code"] == "INTERNAL"
    assert [(row[4], row[6]) for row in sent.audit] == [("graphql.submitTask", "failure")]
    assert not await Task.exists(query="never")


async def test_a_query_the_database_cannot_store_is_answered_alike(
    quiet_app: Starlette, quiet_client: httpx.AsyncClient
) -> None:
    # given a query with a NUL character (PostgreSQL's text refuses it; SQLite stores it)
    acme = await make_tenant("acme")
    agent = await make_agent(acme)
    token = await make_token(acme, "operator")
    body = {"query": SUBMIT, "variables": {"a": agent.id, "q": "nul \x00 char"}}
    # when it is submitted on each path
    sent = await compare_submit(quiet_client, quiet_app, body, token)
    # then the fast path answered, as the general path did
    assert sent.answer.fast
    if get_connection("default").capabilities.dialect == "postgres":
        # a driver error, not a domain error: VALIDATION, recorded by the safety net
        assert orjson.loads(sent.answer.body)["errors"][0]["extensions"]["code"] == "VALIDATION"
        assert [(row[4], row[6]) for row in sent.audit] == [("graphql.submitTask", "failure")]
        assert sent.task is None
    else:
        assert sent.task is not None and sent.task[0][2] == "nul \x00 char"


async def test_a_payload_that_breaks_its_schema_is_answered_alike(
    quiet_app: Starlette, quiet_client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a submit whose payload (on both paths) breaks the schema: a task with a null
    # query and no status, or something that is not a task at all
    acme = await make_tenant("acme")
    token = await make_token(acme, "operator")
    broken = Task(id="tsk_broken", tenant_id=acme.id, agent_id="agt_x", query="x", metadata={})
    broken.query = None  # type: ignore[assignment]
    broken.status = None  # type: ignore[assignment]
    task: Any = broken

    async def payload(*args: Any) -> Any:
        return mutation.SubmitTaskPayload(task=task)

    monkeypatch.setattr(mutation, "submit_task_payload", payload)
    variables = {"a": "agt_any", "q": "hi"}
    for selection, impostor, path in [
        ("{ task { id query } }", False, ["submitTask", "task", "query"]),
        ("{ __typename t: task { isTerminal id } }", False, ["submitTask", "t", "isTerminal"]),
        ("{ task { id } }", True, None),  # graphql-core's type check: an error without a path
    ]:
        task = SimpleNamespace(id="tsk_impostor") if impostor else broken
        body = {"query": SUBMIT.replace("{ task { id } }", selection), "variables": variables}
        for accept in (None, NEW):
            # when it is sent on each path
            sent = await compare_submit(quiet_client, quiet_app, body, token, accept)
            # then the answer is graphql-core's: the error, its null carried up to the root
            assert sent.answer.fast
            answer = orjson.loads(sent.answer.body)
            assert answer.get("data", "none") == (None if path else "none")
            assert [e.get("path") for e in answer["errors"]] == [path]
            audited = [(row[4], row[6]) for row in sent.audit]
            assert audited == [("graphql.submitTask", "failure")]
