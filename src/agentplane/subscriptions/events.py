"""Channel names and the wire form of published events.

Events carry the whole row so that a subscriber never has to read it back from
the database; `step_from_event`/`task_from_event` rebuild unsaved model objects
that the GraphQL types render exactly like rows read from the database.
"""

from datetime import datetime
from decimal import Decimal
from typing import Any

from agentplane.models import (
    ApprovalRequest,
    ApprovalStatus,
    OnExpiry,
    Step,
    StepKind,
    Task,
    TaskStatus,
)

QUEUE_CHANNEL = "agentplane:queue"  # a task was queued: wake the workers
CONTROL_CHANNEL = "agentplane:control"  # run control (cancel) for whichever worker runs it


def task_channel(task_id: str) -> str:
    return f"agentplane:task:{task_id}"


def tenant_tasks_channel(tenant_id: str) -> str:
    return f"agentplane:tenant:{tenant_id}:tasks"


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def step_event(step: Step) -> dict[str, Any]:
    return {
        "id": step.id,
        "task_id": step.task_id,
        "seq": step.seq,
        "kind": step.kind.value,
        "payload": step.payload,
        "model": step.model,
        "input_tokens": step.input_tokens,
        "output_tokens": step.output_tokens,
        "latency_ms": step.latency_ms,
        "cost_usd": _dec(step.cost_usd),
        "created_at": step.created_at.isoformat(),
    }


def shared_step(message: dict[str, Any]) -> Step:
    """One Step object per live event, shared by every local subscriber of the event
    (the broker hands them all the same message dict), so that per-event work keyed
    by the step, such as rendering it for an operation (schema/live.py), is done once."""
    step = message.get("_step")
    if step is None:
        step = message["_step"] = step_from_event(message)
    return step  # type: ignore[no-any-return]


def step_from_event(data: dict[str, Any]) -> Step:
    fields = {k: v for k, v in data.items() if not k.startswith("_")}  # drop local annotations
    return Step(
        **{
            **fields,
            "kind": StepKind(data["kind"]),
            "cost_usd": None if data["cost_usd"] is None else Decimal(data["cost_usd"]),
            "created_at": datetime.fromisoformat(data["created_at"]),
        }
    )


_TASK_FIELDS = (
    "id",
    "tenant_id",
    "agent_id",
    "query",
    "output",
    "error",
    "metadata",
    "last_seq",
    "attempt",
    "status_reason",
    "worker_id",
)
_TASK_TIMES = ("created_at", "updated_at", "started_at", "finished_at")


def task_event(task: Task) -> dict[str, Any]:
    data: dict[str, Any] = {name: getattr(task, name) for name in _TASK_FIELDS}
    data["status"] = task.status.value
    data["cost_usd"] = _dec(task.cost_usd)
    for name in _TASK_TIMES:
        value = getattr(task, name)
        data[name] = value.isoformat() if value else None
    return data


def task_from_event(data: dict[str, Any]) -> Task:
    times = {n: datetime.fromisoformat(data[n]) if data[n] else None for n in _TASK_TIMES}
    return Task(
        **{n: data[n] for n in _TASK_FIELDS},
        **times,
        status=TaskStatus(data["status"]),
        cost_usd=Decimal(data["cost_usd"]),
    )


def task_output_channel(task_id: str) -> str:
    """Best-effort live text chunks of provider calls (not part of the durable trace)."""
    return f"agentplane:task:{task_id}:output"


# Approval requests opened, decided, expired or cancelled (few: one channel, filtered by tenant).
APPROVALS_CHANNEL = "agentplane:approvals"


_APPROVAL_FIELDS = (
    "id",
    "tenant_id",
    "task_id",
    "agent_id",
    "step_seq",
    "call_id",
    "tool",
    "arguments",
    "arguments_schema",
    "risk",
    "preview",
    "decided_by",
    "reason",
    "edited_arguments",
)
_APPROVAL_TIMES = ("expires_at", "decided_at", "created_at")


def approval_event(request: ApprovalRequest) -> dict[str, Any]:
    data: dict[str, Any] = {name: getattr(request, name) for name in _APPROVAL_FIELDS}
    data["status"] = request.status.value
    data["on_expiry"] = request.on_expiry.value
    for name in _APPROVAL_TIMES:
        value = getattr(request, name)
        data[name] = value.isoformat() if value else None
    return data


def approval_from_event(data: dict[str, Any]) -> ApprovalRequest:
    times = {n: datetime.fromisoformat(data[n]) if data[n] else None for n in _APPROVAL_TIMES}
    return ApprovalRequest(
        **{n: data[n] for n in _APPROVAL_FIELDS},
        **times,
        status=ApprovalStatus(data["status"]),
        on_expiry=OnExpiry(data["on_expiry"]),
    )
