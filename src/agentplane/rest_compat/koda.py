"""Koda: runtime API (`/api/runtime/*`) and control-plane agents (`/api/control-plane/agents`).

snake_case records, the operational error envelope `{code, category, message,
retryable, user_action}`. Koda callers choose their agents' identifiers (`"atlas"`):
that identifier is the agent's `name` within the caller's tenant, and agentplane's
own `agt_…` ID is accepted wherever an agent is addressed.
"""

import contextlib
from collections import OrderedDict
from collections.abc import Hashable

from starlette.responses import Response

from agentplane.core.errors import CsrfRejected, DomainError, SlowConsumer
from agentplane.models import Agent, AgentState, Step, Task, TaskStatus
from agentplane.resolvers import agents, tasks, traces
from agentplane.resolvers.auth import KODA_SESSION_COOKIE, Actor
from agentplane.resolvers.health import readiness
from agentplane.rest_compat.common import (
    BOOL,
    DATETIME,
    INT,
    JSON,
    OBJ,
    SSE,
    STR,
    Call,
    Dialect,
    Param,
    Resp,
    array,
    iso,
    json,
    last_event_id,
    nullable,
    obj,
    record,
    sse_event,
    sse_schema,
    sse_text,
)
from agentplane.rest_compat.event_stream import Writer, event_stream
from agentplane.subscriptions import streams

_CATEGORY = {
    "UNAUTHENTICATED": "auth",
    "FORBIDDEN": "auth",
    "NOT_FOUND": "not_found",
    "VALIDATION": "validation",
    "CONFLICT": "conflict",
    "RATE_LIMITED": "rate_limit",
    "SLOW_CONSUMER": "rate_limit",
    "UNAVAILABLE": "availability",
    "METHOD_NOT_ALLOWED": "validation",
    "DOCUMENT_TOO_LARGE": "validation",
    "UNSUPPORTED_CONTENT_TYPE": "validation",
    "FETCH_REFUSED": "validation",
    "FETCH_FAILED": "upstream",
}
_USER_ACTION = {
    "UNAUTHENTICATED": "Send a valid bearer token or operator session.",
    "FORBIDDEN": "Ask an administrator for a role that allows this.",
    "NOT_FOUND": "Check the identifier.",
    "VALIDATION": "Fix the request and retry.",
    "CONFLICT": "Use another identifier or update the existing object.",
    "RATE_LIMITED": "Retry with backoff.",
    "SLOW_CONSUMER": "Reconnect with Last-Event-ID set to the last event's id.",
    "UNAVAILABLE": "Check /api/runtime/ready and retry.",
    "METHOD_NOT_ALLOWED": "Use a method the path allows (see the Allow header).",
    "DOCUMENT_TOO_LARGE": "Split the document or raise AGENTPLANE_MAX_DOCUMENT_BYTES.",
    "UNSUPPORTED_CONTENT_TYPE": "Send UTF-8 text/plain, text/markdown or text/html.",
    "FETCH_REFUSED": "Use an allowed host (AGENTPLANE_FETCH_ALLOW_HOSTS).",
    "FETCH_FAILED": "Check that the URL answers 200 and retry.",
}

_CSRF_ACTION = "Send the session's csrf_token (from login or auth/status) as X-CSRF-Token."


def render_error(exc: DomainError, status: int) -> Response:
    return json(
        {
            "code": exc.code,
            "category": _CATEGORY.get(exc.code, "internal"),
            "message": exc.message,
            "retryable": status in (429, 503),
            "user_action": _CSRF_ACTION
            if isinstance(exc, CsrfRejected)
            else _USER_ACTION.get(exc.code, "Retry later."),
        },
        status,
    )


ERROR = record(
    {
        "code": STR,
        "category": STR,
        "message": STR,
        "retryable": BOOL,
        "user_action": STR,
    }
)

koda = Dialect(
    name="koda",
    title="Koda",
    render_error=render_error,
    fields={
        "agentId": "agent_id",
        "taskId": "task_id",
        "displayName": "display_name",
        "maxSteps": "max_steps",
        "after": "cursor",
    },
    error_schema=ERROR,
    cookie=KODA_SESSION_COOKIE,
)

# ---------------------------------------------------------------- records
AGENT_STATUS = {"type": "string", "enum": [s.value for s in AgentState]}
AGENT = record(
    {
        "id": STR,
        "agentplane_id": STR,
        "display_name": STR,
        "status": AGENT_STATUS,
        "description": STR,
        "model": STR,
        "system_prompt": STR,
        "tools": array(STR),
        "config": OBJ,
        "max_steps": INT,
        "version": INT,
        "published_at": nullable(DATETIME),
        "created_at": DATETIME,
        "updated_at": DATETIME,
    }
)
AGENT_DETAIL = record(
    {
        **AGENT["properties"],
        "skills": array(STR),
        "memory_scope": STR,
        "publication": record({"version": INT, "published_at": nullable(DATETIME)}),
    }
)
AGENT_LIST = record({"agents": array(AGENT), "total": INT, "limit": INT, "offset": INT})
TASK_STATUS = {
    "type": "string",
    "enum": [s.value for s in TaskStatus],
}
TASK = record(
    {
        "id": STR,
        "agent_id": STR,
        "status": TASK_STATUS,
        "created_at": DATETIME,
        "updated_at": DATETIME,
        "metadata": OBJ,
        "output": nullable(STR),
    }
)
STEP = record(
    {
        "id": STR,
        "seq": INT,
        "kind": {
            "type": "string",
            "enum": [
                "provider_call",
                "tool_call",
                "memory_hit",
                "retrieval_hit",
                "audit",
                "status_change",
            ],
        },
        "created_at": DATETIME,
        "payload": OBJ,
        "model": nullable(STR),
        "input_tokens": nullable(INT),
        "output_tokens": nullable(INT),
        "latency_ms": nullable(INT),
        "cost_usd": nullable({"type": "number"}),
    }
)
CHECK = record(
    {
        "id": STR,
        "passed": BOOL,
        "severity": {"type": "string", "enum": ["error", "warning"]},
        "message": STR,
    }
)


def agent_record(agent: Agent) -> JSON:
    return {
        "id": agent.name,
        "agentplane_id": agent.id,
        "display_name": agent.display_name or agent.name,
        "status": agent.state.value,
        "description": agent.description,
        "model": agent.model,
        "system_prompt": agent.system_prompt,
        "tools": list(agent.tools),
        "config": agent.config,
        "max_steps": agent.max_steps,
        "version": agent.version,
        "published_at": iso(agent.published_at),
        "created_at": iso(agent.created_at),
        "updated_at": iso(agent.updated_at),
    }


def agent_detail(agent: Agent) -> JSON:
    return {
        **agent_record(agent),
        "skills": list(agent.tools),
        "memory_scope": "agent",
        "publication": {"version": agent.version, "published_at": iso(agent.published_at)},
    }


def task_record(task: Task, agent_ref: str) -> JSON:
    return {
        "id": task.id,
        "agent_id": agent_ref,
        "status": task.status.value,
        "created_at": iso(task.created_at),
        "updated_at": iso(task.updated_at),
        "metadata": task.metadata,
        "output": task.output,
    }


def step_record(step: Step) -> JSON:
    return {
        "id": step.id,
        "seq": step.seq,
        "kind": step.kind.value.lower(),
        "created_at": iso(step.created_at),
        "payload": step.payload,
        "model": step.model,
        "input_tokens": step.input_tokens,
        "output_tokens": step.output_tokens,
        "latency_ms": step.latency_ms,
        "cost_usd": None if step.cost_usd is None else float(step.cost_usd),
    }


async def _task_record(call: Call, task: Task) -> JSON:
    """The task as Koda shows it: `agent_id` is the agent's Koda identifier (its name)."""
    agent = (await agents.load_agents(call.actor, [task.agent_id]))[0]
    return task_record(task, agent.name if agent is not None else task.agent_id)


# ---------------------------------------------------------------- runtime
@koda.route(
    "GET",
    "/api/runtime/ready",
    summary="Readiness probe: 200 when accepting tasks, 503 otherwise",
    ok={
        200: Resp(record({"status": STR, "checks": OBJ}), "Ready"),
        503: Resp(record({"status": STR, "checks": OBJ}), "Not ready"),
    },
    public=True,
)
async def ready(call: Call) -> Response:
    ok, checks = await readiness()
    return json({"status": "ready" if ok else "not_ready", "checks": checks}, 200 if ok else 503)


LIST_QUERY = (
    Param("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 100}),
    Param("offset", {"type": "integer", "minimum": 0, "maximum": 10**9, "default": 0}),
    Param("status", {"type": "string", "enum": ["draft", "active", "paused"]}),
)


async def _agent_list(call: Call) -> Response:
    status = call.query.get("status")
    page = await agents.list_agents_offset(
        call.actor,
        call.query["limit"],
        call.query["offset"],
        AgentState(status) if status else None,
    )
    return json(
        {
            "agents": [agent_record(a) for a in page.items],
            "total": page.total,
            "limit": page.limit,
            "offset": page.offset,
        }
    )


@koda.route(
    "GET",
    "/api/runtime/agents",
    summary="Runnable agents with their current state",
    ok=Resp(AGENT_LIST),
    query=LIST_QUERY,
)
async def runtime_agents(call: Call) -> Response:
    return await _agent_list(call)


@koda.route(
    "GET",
    "/api/runtime/agents/{agent_id}",
    summary="Agent detail: model, skills, memory scope, publication metadata",
    ok=Resp(AGENT_DETAIL),
)
async def runtime_agent(call: Call) -> Response:
    return json(agent_detail(await agents.find_agent(call.actor, call.path["agent_id"])))


SUBMIT = obj(
    {
        "agent_id": {"type": "string", "minLength": 1, "description": "Koda agent id or agt_…"},
        "query": {"type": "string", "minLength": 1},
        "metadata": OBJ,
    },
    required=("agent_id", "query"),
)


@koda.route(
    "POST",
    "/api/runtime/tasks",
    summary="Submit a task; it runs asynchronously",
    ok={202: Resp(TASK, "Task accepted, running asynchronously")},
    body=SUBMIT,
)
async def submit_task(call: Call) -> Response:
    agent = await agents.find_agent(call.actor, call.body["agent_id"])
    task = await tasks.submit_task(
        call.actor, agent_id=agent.id, query=call.body["query"], metadata=call.body.get("metadata")
    )
    return json(task_record(task, agent.name), 202)


@koda.route(
    "GET",
    "/api/runtime/tasks/{task_id}",
    summary="Task status and final output",
    ok=Resp(TASK),
)
async def get_task(call: Call) -> Response:
    return json(await _task_record(call, await tasks.get_task(call.actor, call.path["task_id"])))


@koda.route(
    "GET",
    "/api/runtime/tasks/{task_id}/trace",
    summary="The full step trace, in order",
    ok=Resp(record({"task": TASK, "steps": array(STEP)})),
)
async def get_trace(call: Call) -> Response:
    task = await tasks.get_task(call.actor, call.path["task_id"])
    steps = await traces.list_steps(call.actor, task, after_seq=None, first=None)
    return json({"task": await _task_record(call, task), "steps": [step_record(s) for s in steps]})


@koda.route(
    "GET",
    "/api/runtime/tasks/{task_id}/events",
    summary="Live trace as Server-Sent Events",
    description=(
        "Replays persisted steps after the cursor, then streams live ones; each event's `id` "
        "is the step's `seq`, so `Last-Event-ID` (or `after_seq`) resumes without loss or "
        "duplicates. A comment heartbeat is sent every 15 s; the stream ends after the step "
        "that makes the task terminal. A reader that falls more than 1,000 events or 4 MiB "
        "behind gets an `error` event (`SLOW_CONSUMER`) and the stream ends: reconnect with "
        "`Last-Event-ID`. A revoked credential ends the stream with an `UNAUTHENTICATED` "
        "`error` event. A credential holds at most ten streams and websockets at once (429)."
    ),
    ok=Resp(
        sse_schema(STEP, ("step",), with_id=True, error=ERROR), "A stream of `step` events", SSE
    ),
    query=(Param("after_seq", {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}),),
)
async def task_events(call: Call) -> Response:
    after = last_event_id(call.request, call.query.get("after_seq"))
    task = await tasks.get_task(call.actor, call.path["task_id"])  # 401/404 before streaming
    return event_stream(call, koda, lambda out: write_steps(out, call.actor, task.id, after))


# Each step's event, framed once per process for every stream that sends it.
_step_frames: OrderedDict[Hashable, str] = OrderedDict()
_MAX_FRAMES = 4096


class StepEvents:
    """A stream of `step` events (`id` = seq), as the task's live feed writes to it."""

    def __init__(self, out: Writer) -> None:
        self.out = out

    async def payload(self, event: Hashable, step: Step) -> str:
        frame = _step_frames.get(event)
        if frame is None:
            frame = sse_text(sse_event(step_record(step), event="step", id=step.seq))
            _step_frames[event] = frame
            if len(_step_frames) > _MAX_FRAMES:
                _step_frames.popitem(last=False)
        return frame

    async def send(self, payload: str) -> None:
        await self.out.send(payload)

    def send_now(self, payload: str) -> bool:
        return self.out.send_now(payload)


async def write_steps(out: Writer, actor: Actor | None, task_id: str, after: int | None) -> None:
    """The task's steps after `after` as `step` events, until the step that ends it."""
    steps = streams.task_events(actor, task_id, after, StepEvents(out))
    try:
        async with contextlib.aclosing(steps):
            async for _ in steps:  # every step renders here: the feed writes them all
                pass
    except SlowConsumer as exc:
        last = exc.details["lastSeq"]
        raise SlowConsumer(
            f"The stream fell behind; reconnect with Last-Event-ID: {last} to resume",
            lastSeq=last,
        ) from None


# ---------------------------------------------------------------- control plane: agents
CP = "/api/control-plane/agents"
CREATE = obj(
    {
        "id": {"type": "string", "minLength": 1, "maxLength": 200},
        "display_name": {"type": "string", "maxLength": 200},
        "status": {"type": "string", "enum": ["draft", "active", "paused"]},
        "description": STR,
        "model": STR,
        "system_prompt": STR,
        "tools": array(STR),
        "config": OBJ,
        "max_steps": {"type": "integer", "minimum": 1, "maximum": 50},
    },
    required=("id",),
)
UPDATE = obj(
    {
        "display_name": {"type": "string", "maxLength": 200},
        "status": {"type": "string", "enum": ["active", "paused"]},
        "description": STR,
        "model": STR,
        "system_prompt": STR,
        "tools": array(STR),
        "config": OBJ,
        "max_steps": {"type": "integer", "minimum": 1, "maximum": 50},
    }
)
CLONE = obj(
    {
        "id": {"type": "string", "minLength": 1, "maxLength": 200},
        "display_name": {"type": "string", "maxLength": 200},
    },
)
_SETTINGS = ("display_name", "description", "model", "system_prompt", "tools", "config")


@koda.route("GET", CP, summary="List agents", ok=Resp(AGENT_LIST), query=LIST_QUERY)
async def list_agents(call: Call) -> Response:
    return await _agent_list(call)


# A Koda agent's `id` is its name.
@koda.route(
    "POST",
    CP,
    summary="Create an agent",
    ok={201: Resp(AGENT, "Created")},
    body=CREATE,
    fields={"name": "id"},
)
async def create_agent(call: Call) -> Response:
    body = call.body
    agent = await agents.create_agent(
        call.actor,
        name=body["id"],
        display_name=body.get("display_name", ""),
        model=body.get("model", "scripted/echo"),
        description=body.get("description", ""),
        system_prompt=body.get("system_prompt", ""),
        tools=body.get("tools"),
        config=body.get("config"),
        max_steps=body.get("max_steps", 8),
        state=AgentState(body.get("status", "active")),
    )
    return json(agent_record(agent), 201)


@koda.route("GET", CP + "/{agent_id}", summary="Get an agent", ok=Resp(AGENT_DETAIL))
async def get_agent(call: Call) -> Response:
    return json(agent_detail(await agents.find_agent(call.actor, call.path["agent_id"])))


@koda.route("PATCH", CP + "/{agent_id}", summary="Update an agent", ok=Resp(AGENT), body=UPDATE)
async def update_agent(call: Call) -> Response:
    agent = await agents.find_agent(call.actor, call.path["agent_id"])
    changes = {k: call.body[k] for k in _SETTINGS if k in call.body}
    if "max_steps" in call.body:
        changes["max_steps"] = call.body["max_steps"]
    agent = await agents.update_agent(call.actor, agent.id, **changes)
    if "status" in call.body:
        agent = await agents.set_agent_state(call.actor, agent.id, AgentState(call.body["status"]))
    return json(agent_record(agent))


@koda.route(
    "DELETE",
    CP + "/{agent_id}",
    summary="Delete (archive) an agent; its tasks stay readable",
    ok=Resp(AGENT),
)
async def delete_agent(call: Call) -> Response:
    agent = await agents.find_agent(call.actor, call.path["agent_id"])
    return json(agent_record(await agents.delete_agent(call.actor, agent.id)))


@koda.route(
    "POST",
    CP + "/{agent_id}/clone",
    fields={"name": "id"},
    summary="Clone an agent into a new draft",
    description="Without `id`, the clone is named `<agent_id>-copy` (then `-copy-2`, ...).",
    ok={201: Resp(AGENT, "Created")},
    body=CLONE,
    body_required=False,
)
async def clone_agent(call: Call) -> Response:
    source = await agents.find_agent(call.actor, call.path["agent_id"])
    agent = await agents.clone_agent(
        call.actor, source.id, name=call.body.get("id"), display_name=call.body.get("display_name")
    )
    return json(agent_record(agent), 201)


@koda.route(
    "POST",
    CP + "/{agent_id}/publish",
    summary="Publish the current settings as a new version",
    ok=Resp(AGENT),
    body=OBJ,
    body_required=False,
)
async def publish_agent(call: Call) -> Response:
    agent = await agents.find_agent(call.actor, call.path["agent_id"])
    return json(agent_record(await agents.publish_agent(call.actor, agent.id)))


@koda.route(
    "POST",
    CP + "/{agent_id}/activate",
    summary="Activate an agent",
    ok=Resp(AGENT),
    body=OBJ,
    body_required=False,
)
async def activate_agent(call: Call) -> Response:
    agent = await agents.find_agent(call.actor, call.path["agent_id"])
    return json(agent_record(await agents.set_agent_state(call.actor, agent.id, AgentState.ACTIVE)))


@koda.route(
    "POST",
    CP + "/{agent_id}/pause",
    summary="Pause an agent: it takes no new tasks",
    ok=Resp(AGENT),
    body=OBJ,
    body_required=False,
)
async def pause_agent(call: Call) -> Response:
    agent = await agents.find_agent(call.actor, call.path["agent_id"])
    return json(agent_record(await agents.set_agent_state(call.actor, agent.id, AgentState.PAUSED)))


VALIDATION = record({"agent_id": STR, "valid": BOOL, "errors": array(STR), "warnings": array(STR)})


@koda.route(
    "POST",
    CP + "/{agent_id}/validate",
    summary="Validate an agent's configuration",
    ok=Resp(VALIDATION),
    body=OBJ,
    body_required=False,
)
async def validate_agent(call: Call) -> Response:
    agent = await agents.find_agent(call.actor, call.path["agent_id"])
    agent, checks = await agents.publish_checks(call.actor, agent.id)
    errors = [c.message for c in checks if not c.passed and c.severity == "error"]
    warnings = [c.message for c in checks if not c.passed and c.severity == "warning"]
    return json(
        {"agent_id": agent.name, "valid": not errors, "errors": errors, "warnings": warnings}
    )


@koda.route(
    "GET",
    CP + "/{agent_id}/publish-checks",
    summary="The checks a publish must pass",
    ok=Resp(record({"agent_id": STR, "ready": BOOL, "checks": array(CHECK)})),
)
async def publish_checks(call: Call) -> Response:
    agent = await agents.find_agent(call.actor, call.path["agent_id"])
    agent, checks = await agents.publish_checks(call.actor, agent.id)
    return json(
        {
            "agent_id": agent.name,
            "ready": all(c.passed for c in checks if c.severity == "error"),
            "checks": [
                {"id": c.id, "passed": c.passed, "severity": c.severity, "message": c.message}
                for c in checks
            ],
        }
    )
