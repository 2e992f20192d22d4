import asyncio
import functools
from dataclasses import dataclass
from typing import Any

from tortoise.connection import get_connection

from agentplane.core import db, ids
from agentplane.core.errors import Conflict, NotFound, ValidationFailed
from agentplane.models import Agent, AgentState, Budget, Step, Task, TaskStatus
from agentplane.models.task import TERMINAL_STATUSES
from agentplane.resolvers import approvals, budgets, traces
from agentplane.resolvers.agents import visible_agent
from agentplane.resolvers.audit import audited
from agentplane.resolvers.auth import Actor
from agentplane.resolvers.pagination import Page, paginate
from agentplane.resolvers.permissions import Perm, check_tenant, is_platform, require
from agentplane.resolvers.tenants import check_phase, check_writable
from agentplane.subscriptions import events
from agentplane.subscriptions.broker import get_broker

MAX_QUERY_CHARS = 100_000
MAX_HISTORY_MESSAGES = 200
MAX_HISTORY_CHARS = 400_000
CONVERSATION_TURNS = 50  # earlier exchanges of a conversation replayed to the model
HISTORY_ROLES = ("user", "assistant")
# Statuses in which no worker runs the task, so a control action applies at once.
IDLE = (TaskStatus.QUEUED, TaskStatus.RETRYING, TaskStatus.PAUSED)
CANCEL_WAIT_S = 2.0


@audited("task.submit", carried=True)
async def submit_task(
    actor: Actor | None,
    *,
    agent_id: str,
    query: str,
    metadata: dict[str, Any] | None = None,
    task_id: str | None = None,
    history: list[dict[str, str]] | None = None,
    conversation_id: str | None = None,
) -> Task:
    """Queue a task. `task_id` (a fresh `ids.task_id()`) lets a caller subscribe to the
    task's live output before any of it can be produced.

    The model sees earlier turns before `query`: the completed exchanges (query and
    answer) of the agent's `conversation_id`, then `history` (user and assistant
    messages, e.g. an OpenAI client's)."""
    actor = require(actor, Perm.TASK_WRITE)
    read = await _read_for_submit(actor, agent_id)
    agent = read.agent
    if agent.state != AgentState.ACTIVE:
        raise ValidationFailed(f"Agent is {agent.state.value}, not active", field="agentId")
    if not query.strip():
        raise ValidationFailed("`query` must not be empty", field="query")
    if len(query) > MAX_QUERY_CHARS:
        raise ValidationFailed(f"`query` exceeds {MAX_QUERY_CHARS} characters", field="query")
    if task_id is not None and (ids.kind_of(task_id) != "Task" or len(task_id) > ids.MAX_LEN):
        raise ValidationFailed("`task_id` must be a fresh task ID", field="taskId")
    if metadata is not None and not isinstance(metadata, dict):
        raise ValidationFailed("`metadata` must be a JSON object", field="metadata")
    _check_history(history or [])
    if conversation_id is not None and not 1 <= len(conversation_id) <= 200:
        raise ValidationFailed("`conversationId` must be 1-200 characters", field="conversationId")
    # A conversation is new (named after this task) or one the agent already has.
    if (
        conversation_id is not None
        and conversation_id != task_id
        and not await Task.exists(agent_id=agent.id, conversation_id=conversation_id)
    ):
        raise NotFound(f"Conversation {conversation_id!r} not found", field="conversationId")
    check_phase(read.tenant_phase)  # a suspended tenant starts no new task
    budgets.check_rows(read.budgets)
    earlier = await _conversation(agent.id, conversation_id) if conversation_id else []
    task = await traces.create_task(
        tenant_id=agent.tenant_id,
        agent_id=agent.id,
        query=query,
        metadata=metadata or {},
        created_by=actor.subject,
        task_id=task_id,
        history=[*earlier, *(history or [])],
        conversation_id=conversation_id,
    )
    await get_broker().publish(events.QUEUE_CHANNEL, {"task_id": task.id})
    return task


@dataclass(frozen=True)
class _SubmitRead:
    agent: Agent
    tenant_phase: str | None
    budgets: list[Budget]  # those a task of the agent spends against (budgets.task_keys)


@functools.cache
def _submit_sql(postgres: bool) -> str:
    """The agent, its tenant's phase and the budgets of `budgets.task_keys` (one row per
    budget; one with none); the account's key is the first parameter, NULL without one."""
    sql = (
        f'SELECT {db.columns_as(Agent, "agent", "a_")}, "tenant"."phase" AS "tenant_phase",'
        f" {db.columns_as(Budget, 'budget', 'b_')}"
        ' FROM "agent" LEFT JOIN "tenant" ON "tenant"."id" = "agent"."tenant_id"'
        ' LEFT JOIN "budget" ON "budget"."scope_key" IN'
        ' (\'global\', \'tenant:\' || "agent"."tenant_id", \'agent:\' || "agent"."id", ?)'
        ' WHERE "agent"."id" = ?'
    )
    return db.numbered(sql) if postgres else sql


async def _read_for_submit(actor: Actor, agent_id: str) -> _SubmitRead:
    """What a submit checks, in one statement: the agent (as `get_agent` answers it),
    its tenant's phase (`check_writable`) and the budgets of `check_submit`."""
    require(actor, Perm.AGENT_READ)
    rows: list[dict[str, Any]] = []
    if len(agent_id) <= ids.MAX_LEN:  # a longer string names no agent
        conn = get_connection("default")
        account = f"account:{actor.subject}" if actor.subject else None
        sql = _submit_sql(conn.capabilities.dialect == "postgres")
        rows = await conn.execute_query_dict(sql, [account, agent_id])
    found = db.model_from(Agent, rows[0], "a_") if rows else None
    agent = visible_agent(actor, agent_id, found)
    return _SubmitRead(
        agent,
        rows[0]["tenant_phase"],
        [db.model_from(Budget, row, "b_") for row in rows if row["b_id"] is not None],
    )


def _check_history(history: list[dict[str, str]]) -> None:
    if not isinstance(history, list) or len(history) > MAX_HISTORY_MESSAGES:
        raise ValidationFailed(
            f"`history` must be a list of at most {MAX_HISTORY_MESSAGES} messages",
            field="history",
        )
    size = 0
    for message in history:
        if (
            not isinstance(message, dict)
            or message.get("role") not in HISTORY_ROLES
            or not isinstance(message.get("content"), str)
        ):
            raise ValidationFailed(
                "Each `history` message is {role: user|assistant, content: text}",
                field="history",
            )
        size += len(message["content"])
    if size > MAX_HISTORY_CHARS:
        raise ValidationFailed(f"`history` exceeds {MAX_HISTORY_CHARS} characters", field="history")


async def _conversation(agent_id: str, conversation_id: str) -> list[dict[str, str]]:
    """The completed exchanges of an agent's conversation, oldest first (the agent was
    already checked to be the caller's)."""
    rows = (
        await Task.filter(
            agent_id=agent_id, conversation_id=conversation_id, status=TaskStatus.COMPLETED
        )
        .order_by("-id")
        .limit(CONVERSATION_TURNS)
        .values_list("query", "output")
    )
    turns: list[dict[str, str]] = []
    for query, output in reversed(rows):
        turns += [
            {"role": "user", "content": query},
            {"role": "assistant", "content": output or ""},
        ]
    return turns


async def get_task(actor: Actor | None, task_id: str) -> Task:
    actor = require(actor, Perm.TASK_READ)
    task = await Task.get_or_none(id=task_id) if len(task_id) <= ids.MAX_LEN else None
    if task is None:
        raise NotFound(f"Task {task_id!r} not found")
    check_tenant(actor, task.tenant_id, f"Task {task_id!r}")
    return task


async def list_tasks(
    actor: Actor | None,
    first: int | None,
    after: str | None,
    agent_id: str | None = None,
    status: TaskStatus | None = None,
) -> Page[Task]:
    """Newest first: a dashboard wants the latest runs on top."""
    filters = task_filters(actor, agent_id, status)
    return await paginate(Task.filter(**filters), first, after, newest_first=True)


def task_filters(
    actor: Actor | None, agent_id: str | None, status: TaskStatus | None
) -> dict[str, Any]:
    """Who may list tasks, and which: the filter of `list_tasks` (and of the pages the
    database renders, `json_pages`)."""
    actor = require(actor, Perm.TASK_READ)
    filters: dict[str, Any] = {} if is_platform(actor) else {"tenant_id": actor.tenant_id}
    if agent_id is not None:
        if len(agent_id) > ids.MAX_LEN:
            raise ValidationFailed("No such agent ID", field="agentId")
        filters["agent_id"] = agent_id
    if status is not None:
        filters["status"] = status
    return filters


MAX_REASON_CHARS = 500


def check_reason(reason: str | None) -> None:
    """An operator's reason for a run-control action (recorded in the audit entry)."""
    if reason is not None and len(reason) > MAX_REASON_CHARS:
        raise ValidationFailed(f"`reason` is at most {MAX_REASON_CHARS} characters", field="reason")


def _by(verb: str, actor: Actor, reason: str | None) -> str:
    """The status step's reason: who did it, and why when they said."""
    return f"{verb} by {actor.subject}" + (f": {reason}" if reason else "")


async def cancel_task(actor: Actor | None, task_id: str, *, reason: str | None = None) -> Task:
    """Cancel a task: at once when queued, else by telling the worker that runs it.

    Waits briefly for the worker to confirm, so the caller usually gets the task
    back already `cancelled`; a terminal task is returned unchanged.
    """
    task = await _request_cancel(actor, task_id, reason=reason)
    if task.status.is_terminal:
        return task
    # The request is committed and announced; subscribe, then read, so no step is missed.
    async with get_broker().subscribe(events.task_channel(task.id)) as sub:
        try:
            async with asyncio.timeout(CANCEL_WAIT_S):
                current = await Task.get(id=task.id)
                while not current.status.is_terminal:
                    await sub.get()
                    current = await Task.get(id=task.id)
        except TimeoutError:
            pass
    return await Task.get(id=task.id)


@audited("task.cancel")
async def _request_cancel(actor: Actor | None, task_id: str, *, reason: str | None) -> Task:
    """Cancel a queued or paused task; flag a running one and tell its worker."""
    actor = require(actor, Perm.TASK_WRITE)
    check_reason(reason)
    task = await get_task(actor, task_id)
    if task.status.is_terminal:
        return task
    # The flag first, then the move: a worker that parks the task for an approval (or claims
    # it) after the flag reads it in the same statement and cancels; one that parked it
    # before leaves it `waiting_for_approval`, which the move below takes. Either order
    # ends cancelled; the other order of these two writes let a cancel fall between them.
    await (
        Task.filter(id=task.id).exclude(status__in=TERMINAL_STATUSES).update(cancel_requested=True)
    )
    cancelled = await traces.transition(
        task.id,
        [TaskStatus.QUEUED, TaskStatus.PAUSED, TaskStatus.WAITING_FOR_APPROVAL],
        TaskStatus.CANCELLED,
        reason=_by("cancelled", actor, reason),
        status_reason="cancelled",
        cancel_requested=False,  # done: nothing is left to tell a worker
    )
    if cancelled is not None:
        await approvals.cancel_for_task(task.id, actor)  # its question will not be answered
        return cancelled
    await get_broker().publish(events.CONTROL_CHANNEL, {"cancel": task.id})
    return await Task.get(id=task.id)


async def get_step(actor: Actor | None, step_id: str) -> Step:
    actor = require(actor, Perm.TASK_READ)
    step = (
        await Step.get_or_none(id=step_id).select_related("task")
        if len(step_id) <= ids.MAX_LEN
        else None
    )
    if step is None:
        raise NotFound(f"Step {step_id!r} not found")
    check_tenant(actor, step.task.tenant_id, f"Step {step_id!r}")
    return step


@audited("task.pause")
async def pause_task(actor: Actor | None, task_id: str, *, reason: str | None = None) -> Task:
    """Pause between steps: at once when idle, else the worker stops after the current step."""
    actor = require(actor, Perm.TASK_WRITE)
    check_reason(reason)
    task = await get_task(actor, task_id)
    if task.status.is_terminal or task.status in (
        TaskStatus.PAUSED,
        TaskStatus.WAITING_FOR_APPROVAL,  # already holds no worker: decide or cancel it
    ):
        raise Conflict(f"Task is {task.status.value}; only an active task can be paused")
    paused = await traces.transition(
        task.id,
        (TaskStatus.QUEUED, TaskStatus.RETRYING),
        TaskStatus.PAUSED,
        reason=_by("paused", actor, reason),
        status_reason="paused",
    )
    if paused is not None:
        return paused
    await Task.filter(id=task.id, status=TaskStatus.RUNNING).update(pause_requested=True)
    return await Task.get(id=task.id)


@audited("task.resume")
async def resume_task(actor: Actor | None, task_id: str, *, reason: str | None = None) -> Task:
    """Queue a paused task again; the next worker continues from its trace.

    One paused for `budget` resumes only once every ceiling it spends against has
    room for the call that was refused (else BUDGET_EXCEEDED); none resumes while
    its tenant is suspended (TENANT_SUSPENDED).
    """
    actor = require(actor, Perm.TASK_WRITE)
    check_reason(reason)
    task = await get_task(actor, task_id)
    await check_writable(task.tenant_id)
    if task.status == TaskStatus.PAUSED and task.status_reason == "budget":
        need = await budgets.refused_amount(task.id)
        await budgets.check_submit(task.tenant_id, task.agent_id, task.created_by, need)
    resumed = await traces.transition(
        task.id,
        [TaskStatus.PAUSED],
        TaskStatus.QUEUED,
        reason=_by("resumed", actor, reason),
        status_reason=None,
        pause_requested=False,
    )
    if resumed is None:
        if task.status == TaskStatus.RUNNING and task.pause_requested:
            # Not paused yet: withdraw the request instead.
            await Task.filter(id=task.id).update(pause_requested=False)
            return await Task.get(id=task.id)
        raise Conflict(f"Task is {task.status.value}, not paused")
    await get_broker().publish(events.QUEUE_CHANNEL, {"task_id": task.id})
    return resumed


@audited("task.retry")
async def retry_task(actor: Actor | None, task_id: str, *, reason: str | None = None) -> Task:
    """Run a failed or cancelled task again from the start, as a new attempt in its trace."""
    actor = require(actor, Perm.TASK_WRITE)
    check_reason(reason)
    task = await get_task(actor, task_id)
    await check_writable(task.tenant_id)
    await budgets.check_submit(task.tenant_id, task.agent_id, task.created_by)
    retried = await traces.transition(
        task.id,
        (TaskStatus.FAILED, TaskStatus.CANCELLED),
        TaskStatus.QUEUED,
        reason=_by("retry", actor, reason),
        details={"restart": True},
        error=None,
        output=None,
        expiries=0,
        finished_at=None,
        cancel_requested=False,
        pause_requested=False,
        status_reason=None,
    )
    if retried is None:
        raise Conflict(
            f"Task is {task.status.value}; only failed or cancelled tasks can be retried"
        )
    await get_broker().publish(events.QUEUE_CHANNEL, {"task_id": task.id})
    return retried
