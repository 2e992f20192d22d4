"""Koda runtime API (`/api/runtime/*`): snake_case records, operational error envelope."""

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agentplane.auth import Actor
from agentplane.errors import DomainError, ValidationFailed
from agentplane.health import readiness
from agentplane.models import Step, Task
from agentplane.resolvers import tasks, traces
from agentplane.rest_compat.common import endpoint, json, json_body

_CATEGORY = {
    "UNAUTHENTICATED": "auth",
    "FORBIDDEN": "auth",
    "NOT_FOUND": "not_found",
    "VALIDATION": "validation",
    "CONFLICT": "conflict",
}
_USER_ACTION = {
    "UNAUTHENTICATED": "Send a valid bearer token.",
    "FORBIDDEN": "Ask an administrator for a role that allows this.",
    "NOT_FOUND": "Check the identifier.",
    "VALIDATION": "Fix the request body and retry.",
    "CONFLICT": "Use another name or update the existing object.",
}


def render_error(exc: DomainError, status: int) -> Response:
    return json(
        {
            "code": exc.code,
            "category": _CATEGORY.get(exc.code, "internal"),
            "message": exc.message,
            "retryable": status in (429, 503),
            "user_action": _USER_ACTION.get(exc.code, "Retry later."),
        },
        status,
    )


def task_record(task: Task) -> dict[str, object]:
    return {
        "id": task.id,
        "agent_id": task.agent_id,
        "status": task.status.value,
        "created_at": task.created_at.isoformat(),
        "updated_at": task.updated_at.isoformat(),
        "metadata": task.metadata,
        "output": task.output,
    }


def step_record(step: Step) -> dict[str, object]:
    return {
        "id": step.id,
        "seq": step.seq,
        "kind": step.kind.value.lower(),
        "created_at": step.created_at.isoformat(),
        "payload": step.payload,
        "model": step.model,
        "input_tokens": step.input_tokens,
        "output_tokens": step.output_tokens,
        "latency_ms": step.latency_ms,
        "cost_usd": None if step.cost_usd is None else float(step.cost_usd),
    }


koda = endpoint(render_error)


async def ready(request: Request) -> Response:
    ok, checks = await readiness()
    return json({"status": "ready" if ok else "not_ready", "checks": checks}, 200 if ok else 503)


@koda
async def submit_task(request: Request, actor: Actor | None) -> Response:
    body = await json_body(request)
    agent_id, query = body.get("agent_id"), body.get("query")
    if not isinstance(agent_id, str) or not isinstance(query, str):
        raise ValidationFailed("`agent_id` and `query` are required strings")
    task = await tasks.submit_task(
        actor, agent_id=agent_id, query=query, metadata=body.get("metadata")
    )
    return json(task_record(task), 202)


@koda
async def get_task(request: Request, actor: Actor | None) -> Response:
    return json(task_record(await tasks.get_task(actor, request.path_params["task_id"])))


@koda
async def get_trace(request: Request, actor: Actor | None) -> Response:
    task = await tasks.get_task(actor, request.path_params["task_id"])
    steps = await traces.list_steps(actor, task, after_seq=None, first=None)
    return json({"task": task_record(task), "steps": [step_record(s) for s in steps]})


routes = [
    Route("/api/runtime/ready", ready),
    Route("/api/runtime/tasks", submit_task, methods=["POST"]),
    Route("/api/runtime/tasks/{task_id}", get_task),
    Route("/api/runtime/tasks/{task_id}/trace", get_trace),
]
