"""Kubiya control plane (`/api/v1`): snake_case, `{items, total, limit, offset}` lists,
`{"error": {code, message, details}}` errors, 422 for failed validation.

An agent's `id` is agentplane's `agt_…` ID; an execution is a task (`tsk_…`);
worker queues have UUIDs, as Kubiya callers expect.
"""

import contextlib
from typing import Any

from starlette.responses import Response

from agentplane import __version__
from agentplane.core.errors import DomainError, ValidationFailed
from agentplane.models import Agent, AgentState, Task, TaskStatus, WorkerQueue
from agentplane.resolvers import agents, tasks, usage, worker_queues
from agentplane.resolvers.health import readiness
from agentplane.rest_compat import koda
from agentplane.rest_compat.common import (
    BOOL,
    DATETIME,
    INT,
    JSON,
    NUM,
    OBJ,
    SSE,
    STR,
    Call,
    Dialect,
    MalformedRequest,
    Param,
    Resp,
    array,
    iso,
    json,
    limit_offset,
    no_content,
    nullable,
    obj,
    record,
    sse_event,
    sse_schema,
    sse_text,
)
from agentplane.rest_compat.event_stream import Writer, event_stream, hold_slot
from agentplane.runtime import catalog

_CODES = {
    "UNAUTHENTICATED": "UNAUTHORIZED",
    "FORBIDDEN": "FORBIDDEN",
    "NOT_FOUND": "NOT_FOUND",
    "VALIDATION": "VALIDATION_ERROR",
    "CONFLICT": "CONFLICT",
    "RATE_LIMITED": "RATE_LIMIT_EXCEEDED",
    "SLOW_CONSUMER": "SLOW_CONSUMER",
    "UNAVAILABLE": "SERVICE_UNAVAILABLE",
    "METHOD_NOT_ALLOWED": "METHOD_NOT_ALLOWED",
}


def render_error(exc: DomainError, status: int) -> Response:
    code = "BAD_REQUEST" if isinstance(exc, MalformedRequest) else _CODES.get(exc.code)
    details = {k: v for k, v in exc.details.items() if v is not None}
    return json(
        {"error": {"code": code or "INTERNAL_ERROR", "message": exc.message, "details": details}},
        status,
    )


ERROR_ENVELOPE = record({"error": record({"code": STR, "message": STR, "details": OBJ})})
kubiya = Dialect(
    name="kubiya",
    title="Kubiya",
    render_error=render_error,
    fields={
        "model": "model_id",
        "query": "prompt",
        "agentId": "agent_id",
        "displayName": "display_name",
        "maxSteps": "max_steps",
    },
    error_schema=ERROR_ENVELOPE,
    validation_status=422,
    rate_limit_headers=True,
)
V1 = "/api/v1"


def page_of(item: JSON) -> JSON:
    return record({"items": array(item), "total": INT, "limit": INT, "offset": INT})


# ---------------------------------------------------------------- health and models
@kubiya.route(
    "GET",
    V1 + "/health",
    summary="Service health",
    ok={
        200: Resp(record({"status": STR, "version": STR, "checks": OBJ}), "Healthy"),
        503: Resp(record({"status": STR, "version": STR, "checks": OBJ}), "Unhealthy"),
    },
    public=True,
)
async def health(call: Call) -> Response:
    ok, checks = await readiness()
    body = {"status": "healthy" if ok else "unhealthy", "version": __version__, "checks": checks}
    return json(body, 200 if ok else 503)


MODEL = record(
    {
        "id": STR,
        "value": STR,
        "label": STR,
        "provider": STR,
        "description": nullable(STR),
        "enabled": BOOL,
        "recommended": BOOL,
        "compatible_runtimes": array(STR),
        "capabilities": OBJ,
        "pricing": nullable(
            record({"input_usd_per_million_tokens": NUM, "output_usd_per_million_tokens": NUM})
        ),
        "display_order": INT,
    }
)
RUNTIMES = ["default", "claude_code"]


@kubiya.route(
    "GET",
    V1 + "/models",
    summary="LLM models agents can use",
    ok=Resp(page_of(MODEL)),
    query=(
        Param("enabled_only", {"type": "boolean", "default": True}),
        Param("provider", STR),
        *limit_offset(default=100),
    ),
)
async def list_models(call: Call) -> Response:
    models = [
        m
        for m in agents.list_models(call.actor, call.query["enabled_only"])
        if call.query.get("provider") in (None, m.provider)
    ]
    limit, offset = call.query["limit"], call.query["offset"]
    items = [
        {
            "id": m.id,
            "value": m.id,
            "label": m.label or m.name,
            "provider": m.provider,
            "description": m.label or None,
            "enabled": catalog.servable(m),
            "recommended": i == 0,
            "compatible_runtimes": RUNTIMES,
            "capabilities": {},
            "pricing": {
                "input_usd_per_million_tokens": float(m.input_usd_per_mtok),
                "output_usd_per_million_tokens": float(m.output_usd_per_mtok),
            }
            if m.input_usd_per_mtok is not None and m.output_usd_per_mtok is not None
            else None,
            "display_order": i,
        }
        for i, m in enumerate(models)
    ]
    return json(
        {
            "items": items[offset : offset + limit],
            "total": len(items),
            "limit": limit,
            "offset": offset,
        }
    )


# ---------------------------------------------------------------- agents
STATUS = {"type": "string", "enum": ["draft", "active", "paused"]}
AGENT = record(
    {
        "id": STR,
        "organization_id": STR,
        "name": STR,
        "description": nullable(STR),
        "system_prompt": nullable(STR),
        "status": STATUS,
        "capabilities": array(STR),
        "configuration": OBJ,
        "model_id": STR,
        "runtime": STR,
        "version": INT,
        "created_at": DATETIME,
        "updated_at": DATETIME,
    }
)
CREATE = obj(
    {
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "description": nullable(STR),
        "runtime": nullable({"type": "string", "enum": RUNTIMES}),
        "model_id": nullable(STR),
        "model": nullable(STR),
        "system_prompt": nullable(STR),
        "capabilities": array(STR),
        "configuration": OBJ,
    },
    required=("name",),
)
UPDATE = obj(
    {
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "description": nullable(STR),
        "runtime": nullable({"type": "string", "enum": RUNTIMES}),
        "model_id": nullable(STR),
        "model": nullable(STR),
        "system_prompt": nullable(STR),
        "status": nullable({"type": "string", "enum": ["active", "paused"]}),
        "capabilities": array(STR),
        "configuration": OBJ,
    }
)


def agent_record(agent: Agent) -> JSON:
    return {
        "id": agent.id,
        "organization_id": agent.tenant_id,
        "name": agent.name,
        "description": agent.description or None,
        "system_prompt": agent.system_prompt or None,
        "status": agent.state.value,
        "capabilities": list(agent.tools),
        "configuration": agent.config,
        "model_id": agent.model,
        "runtime": str(agent.config.get("runtime") or "default"),
        "version": agent.version,
        "created_at": iso(agent.created_at),
        "updated_at": iso(agent.updated_at),
    }


def _config(body: JSON, current: dict[str, Any] | None) -> dict[str, Any] | None:
    """`configuration`, with `runtime` kept in it (the agent's runtime is configuration)."""
    if "configuration" not in body and not body.get("runtime"):
        return None
    config = dict(body.get("configuration", current or {}))
    if body.get("runtime"):
        config["runtime"] = body["runtime"]
    return config


@kubiya.route(
    "GET", V1 + "/agents", summary="List agents", ok=Resp(page_of(AGENT)), query=limit_offset()
)
async def list_agents(call: Call) -> Response:
    page = await agents.list_agents_offset(call.actor, call.query["limit"], call.query["offset"])
    return json(
        {
            "items": [agent_record(a) for a in page.items],
            "total": page.total,
            "limit": page.limit,
            "offset": page.offset,
        }
    )


@kubiya.route("POST", V1 + "/agents", summary="Create an agent", ok={201: Resp(AGENT)}, body=CREATE)
async def create_agent(call: Call) -> Response:
    body = call.body
    agent = await agents.create_agent(
        call.actor,
        name=body["name"],
        model=body.get("model_id") or body.get("model") or "scripted/echo",
        description=body.get("description") or "",
        system_prompt=body.get("system_prompt") or "",
        tools=body.get("capabilities"),
        config=_config(body, None),
    )
    return json(agent_record(agent), 201)


@kubiya.route("GET", V1 + "/agents/{id}", summary="Get an agent", ok=Resp(AGENT))
async def get_agent(call: Call) -> Response:
    return json(agent_record(await agents.get_agent(call.actor, call.path["id"])))


@kubiya.route("PATCH", V1 + "/agents/{id}", summary="Update an agent", ok=Resp(AGENT), body=UPDATE)
async def update_agent(call: Call) -> Response:
    body = call.body
    agent = await agents.get_agent(call.actor, call.path["id"])
    changes: dict[str, Any] = {
        "name": body.get("name"),
        "description": body.get("description"),
        "system_prompt": body.get("system_prompt"),
        "model": body.get("model_id") or body.get("model"),
        "tools": body.get("capabilities"),
        "config": _config(body, agent.config),
    }
    agent = await agents.update_agent(call.actor, agent.id, **changes)
    if body.get("status"):
        agent = await agents.set_agent_state(call.actor, agent.id, AgentState(body["status"]))
    return json(agent_record(agent))


@kubiya.route(
    "DELETE",
    V1 + "/agents/{id}",
    summary="Delete an agent (archived; its executions stay readable)",
    ok={204: Resp(None, "Deleted")},
)
async def delete_agent(call: Call) -> Response:
    await agents.delete_agent(call.actor, call.path["id"])
    return no_content()


# ---------------------------------------------------------------- executions
_EXECUTION_STATUS = {
    TaskStatus.QUEUED: "pending",
    TaskStatus.RETRYING: "running",
}
EXECUTION = record(
    {
        "id": STR,
        "execution_id": STR,
        "workflow_id": STR,
        "agent_id": STR,
        "status": {
            "type": "string",
            "enum": [
                "pending",
                "running",
                "paused",
                "waiting_for_approval",
                "completed",
                "failed",
                "cancelled",
            ],
        },
        "prompt": STR,
        "response": nullable(STR),
        "error_message": nullable(STR),
        "worker_queue_id": nullable(STR),
        "usage": record(
            {"input_tokens": INT, "output_tokens": INT, "total_tokens": INT, "cost_usd": NUM}
        ),
        "created_at": DATETIME,
        "started_at": nullable(DATETIME),
        "completed_at": nullable(DATETIME),
    }
)
EXECUTE = obj(
    {
        "prompt": {"type": "string", "minLength": 1},
        "worker_queue_id": {"type": "string", "description": "UUID of an existing worker queue"},
        "stream": {"type": "boolean", "default": False},
        "user_metadata": nullable(OBJ),
        "system_prompt": nullable(
            {"type": "string", "description": "Not supported: set the agent's system_prompt"}
        ),
    },
    required=("prompt", "worker_queue_id"),
)
SUBMITTED = record({"execution_id": STR, "workflow_id": STR, "status": STR, "message": STR})


async def execution_record(call: Call, task: Task) -> JSON:
    spent = await usage.task_usage(call.actor, task)
    return {
        "id": task.id,
        "execution_id": task.id,
        "workflow_id": f"agent-execution-{task.id}",
        "agent_id": task.agent_id,
        "status": _EXECUTION_STATUS.get(task.status, task.status.value),
        "prompt": task.query,
        "response": task.output,
        "error_message": task.error,
        "worker_queue_id": (task.metadata or {}).get("worker_queue_id"),
        "usage": {
            "input_tokens": spent.input_tokens,
            "output_tokens": spent.output_tokens,
            "total_tokens": spent.input_tokens + spent.output_tokens,
            "cost_usd": float(spent.cost_usd),
        },
        "created_at": iso(task.created_at),
        "started_at": iso(task.started_at),
        "completed_at": iso(task.finished_at),
    }


@kubiya.route(
    "POST",
    V1 + "/agents/{id}/execute",
    summary="Execute an agent on a prompt",
    description=(
        "Routes the run to `worker_queue_id`. With `stream: true` the answer is a "
        "Server-Sent Events stream: one `step` event per trace step (`id` = its seq), then "
        "a `done` event with the execution, ending when the run ends. A reader that falls "
        "more than 1,000 events or 4 MiB behind gets an `error` event (`SLOW_CONSUMER`, "
        "`details.lastSeq`) and the stream ends; so does a revoked credential "
        "(`UNAUTHORIZED`). A credential holds at most ten streams and websockets at once."
    ),
    ok=Resp(
        SUBMITTED,
        "Execution submitted; with `stream: true`, its events",
        alternatives=(
            (
                SSE,
                sse_schema(
                    {"anyOf": [koda.STEP, EXECUTION]}, ("step", "done"), error=ERROR_ENVELOPE
                ),
            ),
        ),
    ),
    body=EXECUTE,
)
async def execute_agent(call: Call) -> Response:
    body = call.body
    agent = await agents.get_agent(call.actor, call.path["id"])
    if body.get("system_prompt"):
        # Refused rather than silently ignored: runs use the agent's own system prompt.
        raise ValidationFailed(
            "A per-execution system_prompt is not supported; PATCH the agent's system_prompt",
            field="system_prompt",
        )
    worker_queues.parse_queue_id(body["worker_queue_id"], "worker_queue_id")
    queue = await worker_queues.get_worker_queue(call.actor, body["worker_queue_id"])
    metadata: JSON = {"worker_queue_id": str(queue.id)}
    if body.get("user_metadata"):
        metadata["user_metadata"] = body["user_metadata"]
    held = contextlib.AsyncExitStack()  # a stream's slot, taken before the run starts
    if body.get("stream"):
        hold_slot(call, held)
    try:
        task = await tasks.submit_task(
            call.actor, agent_id=agent.id, query=body["prompt"], metadata=metadata
        )
    except BaseException:
        await held.aclose()
        raise
    if not body.get("stream"):
        return json(
            {
                "execution_id": task.id,
                "workflow_id": f"agent-execution-{task.id}",
                "status": "pending",
                "message": f"Execution submitted to worker queue {queue.name!r}",
            }
        )

    async def produce(out: Writer) -> None:
        await koda.write_steps(out, call.actor, task.id, 0)
        final = await tasks.get_task(call.actor, task.id)
        await out.send(sse_text(sse_event(await execution_record(call, final), event="done")))

    return event_stream(call, kubiya, produce, held)


@kubiya.route("GET", V1 + "/executions/{id}", summary="Get an execution", ok=Resp(EXECUTION))
async def get_execution(call: Call) -> Response:
    task = await tasks.get_task(call.actor, call.path["id"])
    return json(await execution_record(call, task))


# ---------------------------------------------------------------- worker queues
QUEUE = record(
    {
        "id": STR,
        "organization_id": STR,
        "name": STR,
        "display_name": STR,
        "description": nullable(STR),
        "status": STR,
        "max_workers": nullable(INT),
        "heartbeat_interval": INT,
        "created_at": DATETIME,
        "updated_at": DATETIME,
    }
)
QUEUE_CREATE = obj(
    {
        "name": {"type": "string", "minLength": 1, "maxLength": 100},
        "display_name": nullable({"type": "string", "maxLength": 200}),
        "description": nullable(STR),
        "max_workers": nullable({"type": "integer", "minimum": 1, "maximum": 10000}),
        "heartbeat_interval": {"type": "integer", "minimum": 10, "maximum": 3600},
    },
    required=("name",),
)


def queue_record(queue: WorkerQueue) -> JSON:
    return {
        "id": str(queue.id),
        "organization_id": queue.tenant_id,
        "name": queue.name,
        "display_name": queue.display_name,
        "description": queue.description or None,
        "status": "active",
        "max_workers": queue.max_workers,
        "heartbeat_interval": queue.heartbeat_interval,
        "created_at": iso(queue.created_at),
        "updated_at": iso(queue.updated_at),
    }


@kubiya.route(
    "GET",
    V1 + "/worker-queues",
    summary="List worker queues",
    ok=Resp(page_of(QUEUE)),
    query=limit_offset(),
)
async def list_worker_queues(call: Call) -> Response:
    page = await worker_queues.list_worker_queues(
        call.actor, call.query["limit"], call.query["offset"]
    )
    return json(
        {
            "items": [queue_record(q) for q in page.items],
            "total": page.total,
            "limit": page.limit,
            "offset": page.offset,
        }
    )


@kubiya.route(
    "POST",
    V1 + "/worker-queues",
    summary="Create a worker queue",
    ok={201: Resp(QUEUE)},
    body=QUEUE_CREATE,
)
async def create_worker_queue(call: Call) -> Response:
    body = call.body
    queue = await worker_queues.create_worker_queue(
        call.actor,
        name=body["name"],
        display_name=body.get("display_name") or "",
        description=body.get("description") or "",
        max_workers=body.get("max_workers"),
        heartbeat_interval=body.get("heartbeat_interval", 60),
    )
    return json(queue_record(queue), 201)


@kubiya.route("GET", V1 + "/worker-queues/{id}", summary="Get a worker queue", ok=Resp(QUEUE))
async def get_worker_queue(call: Call) -> Response:
    return json(queue_record(await worker_queues.get_worker_queue(call.actor, call.path["id"])))


@kubiya.route(
    "DELETE",
    V1 + "/worker-queues/{id}",
    summary="Delete a worker queue",
    ok={204: Resp(None, "Deleted")},
)
async def delete_worker_queue(call: Call) -> Response:
    await worker_queues.delete_worker_queue(call.actor, call.path["id"])
    return no_content()
