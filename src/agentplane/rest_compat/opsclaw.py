"""OpsClaw control plane (`/v1`, `/healthz`): camelCase records, bearer access tokens.

Errors use `{"error": {code, message, type, param}}`, the shape OpenAI clients
parse, so the OpenAI-compatible `chat/completions` endpoint and the rest of the
dialect share one envelope. Runs are tasks (`tsk_…`); `run`, `chat` and
`chat/completions` wait for the task to end (synchronous one-shot runs).
"""

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from sse_starlette.sse import ServerSentEvent
from starlette.responses import Response

from agentplane import __version__
from agentplane.core import ids
from agentplane.core.errors import DomainError, ValidationFailed
from agentplane.models import Agent, Task, TaskStatus
from agentplane.resolvers import agents, approvals, server, tasks, usage
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
    UpstreamFailed,
    array,
    iso,
    json,
    nullable,
    obj,
    record,
    sse_event,
    sse_text,
)
from agentplane.rest_compat.event_stream import Writer, event_stream, hold_slot
from agentplane.subscriptions import feeds, streams
from agentplane.subscriptions.feeds import Member, Outcome

_TYPES = {
    "UNAUTHENTICATED": ("invalid_api_key", "authentication_error"),
    "FORBIDDEN": ("forbidden", "permission_error"),
    "NOT_FOUND": ("not_found", "not_found_error"),
    "VALIDATION": ("validation_failed", "invalid_request_error"),
    "CONFLICT": ("conflict", "invalid_request_error"),
    "RATE_LIMITED": ("rate_limited", "rate_limit_error"),
    "UPSTREAM": ("run_failed", "server_error"),
    "APPROVAL_REQUIRED": ("approval_required", "invalid_request_error"),
    "UNAVAILABLE": ("unavailable", "server_error"),
    "METHOD_NOT_ALLOWED": ("method_not_allowed", "invalid_request_error"),
}


def error_object(exc: DomainError) -> JSON:
    """OpenAI's error object, in a response body or a stream's last event alike."""
    code, type_ = _TYPES.get(exc.code, ("internal_error", "server_error"))
    if isinstance(exc, MalformedRequest):
        code = "invalid_json"
    param = exc.details.get("field")
    return {
        "code": code,
        "message": exc.message,
        "type": type_,
        "param": param if isinstance(param, str) else None,
    }


def render_error(exc: DomainError, status: int) -> Response:
    return json({"error": error_object(exc)}, status)


opsclaw = Dialect(
    name="opsclaw",
    title="OpsClaw",
    render_error=render_error,
    fields={"after": "cursor", "email": "subjectId"},
    error_schema=record(
        {"error": record({"code": STR, "message": STR, "type": STR, "param": nullable(STR)})}
    ),
)
RUN_TIMEOUT_S = 120


@opsclaw.route(
    "GET",
    "/healthz",
    summary="Health check for the API process",
    ok=Resp(record({"status": STR, "version": STR})),
    public=True,
)
async def healthz(call: Call) -> Response:
    return json({"status": "ok", "version": __version__})


@opsclaw.route(
    "GET",
    "/metrics",
    summary="Prometheus metrics of this process",
    ok=Resp(
        {"type": "string"},
        description="Prometheus text exposition format",
        media_type="text/plain; version=0.0.4; charset=utf-8",
    ),
    public=True,
)
async def prometheus_metrics(call: Call) -> Response:
    return Response(await server.prometheus_text(), media_type=CONTENT_TYPE_LATEST)


# ---------------------------------------------------------------- agents
AGENT = record(
    {
        "id": STR,
        "name": STR,
        "displayName": STR,
        "description": STR,
        "model": STR,
        "systemPrompt": STR,
        "tools": array(STR),
        "config": OBJ,
        "maxSteps": INT,
        "status": {"type": "string", "enum": ["draft", "active", "paused"]},
        "version": INT,
        "createdAt": DATETIME,
        "updatedAt": DATETIME,
    }
)
_FIELDS = {
    "name": {"type": "string", "minLength": 1, "maxLength": 200},
    "displayName": {"type": "string", "maxLength": 200},
    "description": STR,
    "model": STR,
    "systemPrompt": STR,
    "tools": array(STR),
    "config": OBJ,
    "maxSteps": {"type": "integer", "minimum": 1, "maximum": 50},
}
_RENAMES = {
    "name": "name",
    "displayName": "display_name",
    "description": "description",
    "model": "model",
    "systemPrompt": "system_prompt",
    "tools": "tools",
    "config": "config",
    "maxSteps": "max_steps",
}


def agent_record(agent: Agent) -> JSON:
    return {
        "id": agent.id,
        "name": agent.name,
        "displayName": agent.display_name or agent.name,
        "description": agent.description,
        "model": agent.model,
        "systemPrompt": agent.system_prompt,
        "tools": list(agent.tools),
        "config": agent.config,
        "maxSteps": agent.max_steps,
        "status": agent.state.value,
        "version": agent.version,
        "createdAt": iso(agent.created_at),
        "updatedAt": iso(agent.updated_at),
    }


@opsclaw.route(
    "POST",
    "/v1/agents",
    summary="Create an agent",
    ok={201: Resp(AGENT, "Created")},
    body=obj(_FIELDS, required=("name",)),
)
async def create_agent(call: Call) -> Response:
    fields = {_RENAMES[k]: v for k, v in call.body.items() if k in _RENAMES}
    fields.setdefault("model", "scripted/echo")
    agent = await agents.create_agent(call.actor, **fields)
    return json(agent_record(agent), 201)


@opsclaw.route("GET", "/v1/agents/{id}", summary="Get an agent", ok=Resp(AGENT))
async def get_agent(call: Call) -> Response:
    return json(agent_record(await agents.find_agent(call.actor, call.path["id"])))


@opsclaw.route(
    "PUT", "/v1/agents/{id}", summary="Update an agent", ok=Resp(AGENT), body=obj(_FIELDS)
)
async def update_agent(call: Call) -> Response:
    agent = await agents.find_agent(call.actor, call.path["id"])
    changes = {_RENAMES[k]: v for k, v in call.body.items() if k in _RENAMES}
    return json(agent_record(await agents.update_agent(call.actor, agent.id, **changes)))


@opsclaw.route(
    "DELETE",
    "/v1/agents/{id}",
    summary="Soft-delete an agent (its runs stay readable)",
    ok=Resp(record({"id": STR, "deleted": BOOL, "deletedAt": DATETIME})),
)
async def delete_agent(call: Call) -> Response:
    agent = await agents.find_agent(call.actor, call.path["id"])
    agent = await agents.delete_agent(call.actor, agent.id)
    return json({"id": agent.id, "deleted": True, "deletedAt": iso(agent.updated_at)})


# ---------------------------------------------------------------- runs
USAGE = record({"inputTokens": INT, "outputTokens": INT, "totalTokens": INT, "costUsd": NUM})
RUN = record(
    {
        "id": STR,
        "agentId": STR,
        "status": {
            "type": "string",
            "enum": [s.value for s in TaskStatus],
        },
        "input": STR,
        "output": nullable(STR),
        "error": nullable(STR),
        "metadata": OBJ,
        "usage": USAGE,
        "createdAt": DATETIME,
        "startedAt": nullable(DATETIME),
        "finishedAt": nullable(DATETIME),
    }
)


def usage_record(spent: usage.TaskUsage) -> JSON:
    return {
        "inputTokens": spent.input_tokens,
        "outputTokens": spent.output_tokens,
        "totalTokens": spent.input_tokens + spent.output_tokens,
        "costUsd": float(spent.cost_usd),
    }


def run_record(task: Task, spent: usage.TaskUsage) -> JSON:
    return {
        "id": task.id,
        "agentId": task.agent_id,
        "status": task.status.value,
        "input": task.query,
        "output": task.output,
        "error": task.error,
        "metadata": task.metadata,
        "usage": usage_record(spent),
        "createdAt": iso(task.created_at),
        "startedAt": iso(task.started_at),
        "finishedAt": iso(task.finished_at),
    }


@opsclaw.route(
    "POST",
    "/v1/agents/{id}/run",
    fields={"query": "input"},
    summary="Synchronous one-shot run",
    description=(
        "Runs the agent on `input` and answers when the run ends (200), or with the run "
        "still in progress after `timeoutSeconds` (202; poll `GET /v1/agent-runs`)."
    ),
    ok={200: Resp(RUN, "The finished run"), 202: Resp(RUN, "Still running at the timeout")},
    body=obj(
        {
            "input": {"type": "string", "minLength": 1},
            "metadata": OBJ,
            "timeoutSeconds": {"type": "integer", "minimum": 1, "maximum": 600},
        },
        required=("input",),
    ),
)
async def run_agent(call: Call) -> Response:
    agent = await agents.find_agent(call.actor, call.path["id"])
    task = await tasks.submit_task(
        call.actor, agent_id=agent.id, query=call.body["input"], metadata=call.body.get("metadata")
    )
    task = await streams.run_to_end(
        call.actor, task, call.body.get("timeoutSeconds", RUN_TIMEOUT_S)
    )
    spent = await usage.task_usage(call.actor, task)
    return json(run_record(task, spent), 200 if task.status.is_terminal else 202)


@opsclaw.route(
    "POST",
    "/v1/agents/{id}/chat",
    fields={"query": "message"},
    summary="Synchronous chat with an agent",
    description=(
        "Answers when the run ends. A `conversationId` from an earlier answer continues "
        "that conversation: its completed exchanges (up to 50) reach the model before "
        "`message`. Without one, a new conversation starts (its id is the run's). A run "
        "that waits for a human's approval answers 409 `approval_required` at once."
    ),
    ok=Resp(
        record(
            {
                "runId": STR,
                "conversationId": STR,
                "reply": STR,
                "status": STR,
                "usage": USAGE,
            }
        )
    ),
    body=obj(
        {
            "message": {"type": "string", "minLength": 1},
            "conversationId": {"type": "string", "maxLength": 200},
            "metadata": OBJ,
        },
        required=("message",),
    ),
    errors=(409, 502),
)
async def chat(call: Call) -> Response:
    agent = await agents.find_agent(call.actor, call.path["id"])
    task_id = ids.task_id()
    conversation = call.body.get("conversationId") or task_id  # a new conversation
    task = await tasks.submit_task(
        call.actor,
        agent_id=agent.id,
        query=call.body["message"],
        metadata=call.body.get("metadata"),
        task_id=task_id,
        conversation_id=conversation,
    )
    task = await _finished(call, task)
    spent = await usage.task_usage(call.actor, task)
    return json(
        {
            "runId": task.id,
            "conversationId": conversation,
            "reply": task.output or "",
            "status": task.status.value,
            "usage": usage_record(spent),
        }
    )


async def _finished(call: Call, task: Task) -> Task:
    """Wait for a synchronous run; a run that fails or overruns is a 502, one that waits
    for an approval a 409 naming it."""
    task = await streams.run_to_end(call.actor, task, call.settings.task_timeout_s + 5)
    if task.status == TaskStatus.WAITING_FOR_APPROVAL:
        raise await approvals.approval_required(call.actor, task)
    if not task.status.is_terminal:
        await tasks.cancel_task(call.actor, task.id)
        raise UpstreamFailed("The run did not finish in time and was cancelled")
    if task.status != TaskStatus.COMPLETED:
        raise UpstreamFailed(f"The run {task.status.value}: {task.error or 'no output'}")
    return task


# ---------------------------------------------------------------- OpenAI chat completions
MESSAGE = obj(
    {
        "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool"]},
        "content": {
            "anyOf": [{"type": "string"}, array({"type": "object"}), {"type": "null"}],
            "description": "Text, or content parts (the `text` parts are read)",
        },
    },
    required=("role",),
)
COMPLETION_REQUEST = obj(
    {
        "model": STR,
        "messages": {"type": "array", "items": MESSAGE, "minItems": 1},
        "stream": {"type": "boolean", "default": False},
        "stream_options": nullable(obj({"include_usage": BOOL})),
    },
    required=("messages",),
)
OPENAI_USAGE = record({"prompt_tokens": INT, "completion_tokens": INT, "total_tokens": INT})
COMPLETION = record(
    {
        "id": STR,
        "object": {"type": "string", "const": "chat.completion"},
        "created": INT,
        "model": STR,
        "choices": array(
            record(
                {
                    "index": INT,
                    "message": record(
                        {"role": {"type": "string", "const": "assistant"}, "content": STR}
                    ),
                    "finish_reason": STR,
                }
            )
        ),
        "usage": OPENAI_USAGE,
    }
)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: keep the text ones
        return "".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


@dataclass
class _Tokens:
    prompt: int = 0
    completion: int = 0

    def wire(self) -> JSON:
        return {
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.prompt + self.completion,
        }


async def _live_text(call: Call, task: Task, output: Member) -> AsyncIterator[str]:
    """The run's model output as it is produced, until the run ends.

    `output` joined the task's output feed before the task existed, so it misses no chunk.
    Live text is best-effort (not persisted): if the listener falls behind, this stops
    passing text on, waits for the end, and the caller sends the rest of the durable
    answer. A run that overruns the task timeout is cancelled.
    """
    deadline = time.monotonic() + call.settings.task_timeout_s + 5
    chunks = output.stream()
    async with contextlib.aclosing(chunks):
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                async with asyncio.timeout(remaining):
                    text = await anext(chunks)
            except (TimeoutError, StopAsyncIteration):
                break
            yield text
    if output.outcome is Outcome.ENDED:  # the run ended, or waits for an approval
        return
    # Fell behind, or out of time: follow the durable trace to the end instead.
    end = await streams.run_to_end(call.actor, task, max(deadline - time.monotonic(), 0))
    if not end.status.is_terminal and end.status != TaskStatus.WAITING_FOR_APPROVAL:
        await tasks.cancel_task(call.actor, task.id)


@opsclaw.route(
    "POST",
    "/v1/agents/{id}/chat/completions",
    fields={"query": "messages", "history": "messages"},
    summary="OpenAI-compatible chat completions on an agent",
    description=(
        "The OpenAI chat-completions wire format: point an OpenAI SDK's base URL at "
        "`/v1/agents/{id}`. The agent answers the last user message with its own model, "
        "prompt and tools (`model` is echoed, not used); the user and assistant messages "
        "before it reach the model as the conversation so far. `stream: true` answers "
        "`chat.completion.chunk` events ending in `[DONE]`; `stream_options.include_usage` "
        "adds a final usage chunk. A run that waits for a human's approval answers 409 "
        "`approval_required` (streaming: an error event), naming the approval to decide."
    ),
    ok=Resp(
        COMPLETION,
        "A completion; with `stream: true`, its chunks",
        alternatives=(
            (
                SSE,
                obj(
                    {"data": {"type": "string", "description": "A chunk as JSON, or [DONE]"}},
                    required=("data",),
                ),
            ),
        ),
    ),
    body=COMPLETION_REQUEST,
    errors=(409, 502),
)
async def chat_completions(call: Call) -> Response:
    body = call.body
    agent = await agents.find_agent(call.actor, call.path["id"])
    messages = body["messages"]
    asked = [
        i
        for i, m in enumerate(messages)
        if m.get("role") == "user" and _text(m.get("content")).strip()
    ]
    if not asked:
        raise ValidationFailed("`messages` needs a user message with text", field="messages")
    # The last user message is the query; earlier user and assistant turns reach the model
    # as history. The agent keeps its own system prompt and tools, so system, developer
    # and tool messages are not replayed.
    query = _text(messages[asked[-1]]["content"])
    history = [
        {"role": m["role"], "content": _text(m.get("content"))}
        for m in messages[: asked[-1]]
        if m.get("role") in ("user", "assistant")
    ]
    # Streaming holds one of the caller's stream slots until the stream ends (`held`), and
    # listens to the run's live output from before the task exists, so no chunk can be
    # missed, until the live text ends (`listening`).
    task_id = ids.task_id()
    held = contextlib.AsyncExitStack()
    listening = contextlib.AsyncExitStack()
    output = None
    if body.get("stream"):
        hold_slot(call, held)
        held.push_async_callback(listening.aclose)
        try:
            listener = feeds.output_listener(task_id, until_parked=True)
            output = await listening.enter_async_context(listener)
        except BaseException:
            await held.aclose()
            raise
    try:
        task = await tasks.submit_task(
            call.actor,
            agent_id=agent.id,
            query=query,
            metadata={"source": "chat.completions"},
            task_id=task_id,
            history=history,
        )
    except BaseException:
        await held.aclose()
        raise
    model = body.get("model") or agent.model
    completion_id = f"chatcmpl-{task.id}"
    created = int(time.time())
    if not body.get("stream"):
        task = await _finished(call, task)
        spent = await usage.task_usage(call.actor, task)
        return json(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": task.output or ""},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": spent.input_tokens,
                    "completion_tokens": spent.output_tokens,
                    "total_tokens": spent.input_tokens + spent.output_tokens,
                },
            }
        )
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def chunk(delta: JSON, finish: str | None = None) -> ServerSentEvent:
        return sse_event(
            {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
        )

    async def events() -> AsyncGenerator[ServerSentEvent, None]:
        try:
            yield chunk({"role": "assistant", "content": ""})
            sent = ""
            assert output is not None
            async for text in _live_text(call, task, output):
                sent += text
                yield chunk({"content": text})
        finally:
            await listening.aclose()
        final = await tasks.get_task(call.actor, task.id)
        if final.status == TaskStatus.WAITING_FOR_APPROVAL:
            waiting = await approvals.approval_required(call.actor, final)
            yield sse_event({"error": error_object(waiting)})
            return
        if final.status != TaskStatus.COMPLETED:
            message = f"The run {final.status.value}: {final.error or 'no output'}"
            yield sse_event({"error": error_object(UpstreamFailed(message))})
            return
        # Whatever the live feed did not carry (all of it, if the run had started before
        # we listened): the rest of the durable answer, word by word.
        answer = final.output or ""
        rest = answer[len(sent) :] if answer.startswith(sent) else ""
        for piece in re.findall(r"\s*\S+", rest):
            yield chunk({"content": piece})
        spent = await usage.task_usage(call.actor, final)
        tokens = _Tokens(spent.input_tokens, spent.output_tokens)
        yield chunk({}, "stop")
        if include_usage:
            yield sse_event(
                {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": tokens.wire(),
                }
            )
        yield ServerSentEvent(data="[DONE]")

    async def produce(out: Writer) -> None:
        async with contextlib.aclosing(events()) as stream:
            async for event in stream:
                await out.send(sse_text(event))

    return event_stream(call, opsclaw, produce, held)


# ---------------------------------------------------------------- history and billing
@opsclaw.route(
    "GET",
    "/v1/agent-runs",
    summary="Run history of the caller's tenant, newest first",
    ok=Resp(record({"data": array(RUN), "nextCursor": nullable(STR), "hasMore": BOOL})),
    query=(
        Param("agentId", STR),
        Param(
            "status",
            {
                "type": "string",
                "enum": [s.value for s in TaskStatus],
            },
        ),
        Param("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}),
        Param("cursor", STR),
    ),
)
async def list_runs(call: Call) -> Response:
    agent_id = call.query.get("agentId")
    if agent_id is not None:
        agent_id = (await agents.find_agent(call.actor, agent_id)).id
    status = call.query.get("status")
    page = await tasks.list_tasks(
        call.actor,
        call.query["limit"],
        call.query.get("cursor"),
        agent_id=agent_id,
        status=TaskStatus(status) if status else None,
    )
    spent = await usage.tasks_usage(call.actor, page.items)
    return json(
        {
            "data": [run_record(t, spent[t.id]) for t in page.items],
            "nextCursor": page.cursor(page.items[-1]) if page.has_next else None,
            "hasMore": page.has_next,
        }
    )


MODEL_USAGE = record(
    {"model": STR, "inputTokens": INT, "outputTokens": INT, "costUsd": NUM, "calls": INT}
)


@opsclaw.route(
    "GET",
    "/v1/billing/usage",
    summary="Current month usage spend for the caller's tenant",
    ok=Resp(
        record(
            {
                "tenantId": STR,
                "periodStart": DATETIME,
                "periodEnd": DATETIME,
                "currency": STR,
                "totalCostUsd": NUM,
                "inputTokens": INT,
                "outputTokens": INT,
                "calls": INT,
                "unpricedCalls": INT,
                "byModel": array(MODEL_USAGE),
            }
        )
    ),
)
async def billing_usage(call: Call) -> Response:
    summary = await usage.tenant_usage(call.actor)
    return json(
        {
            "tenantId": summary.tenant_id,
            "periodStart": iso(summary.period_start),
            "periodEnd": iso(summary.period_end),
            "currency": "USD",
            "totalCostUsd": float(summary.cost_usd),
            "inputTokens": summary.input_tokens,
            "outputTokens": summary.output_tokens,
            "calls": summary.calls,
            "unpricedCalls": summary.unpriced_calls,
            "byModel": [
                {
                    "model": m.model,
                    "inputTokens": m.input_tokens,
                    "outputTokens": m.output_tokens,
                    "costUsd": float(m.cost_usd),
                    "calls": m.calls,
                }
                for m in summary.by_model
            ],
        }
    )
