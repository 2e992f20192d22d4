"""The agent loop: call the model, run the tools it asks for, until it answers.

The loop is durable: its whole state is the trace. A worker that takes over a
task (after a crash, a pause, a hand-back) rebuilds the conversation from the
persisted steps and continues where the last step left off, so no model call
or tool call that was recorded is made twice.
"""

import time
from dataclasses import dataclass, field
from typing import Any

from agentplane.core import observability
from agentplane.models import Agent, Step, StepKind, StepPayload, Task
from agentplane.resolvers import budgets, provider_keys, step_payloads
from agentplane.resolvers.traces import Usage, append_step
from agentplane.retrieval import knowledge
from agentplane.retrieval.fusion import weights_of
from agentplane.runtime import approvals, catalog
from agentplane.runtime.providers.base import (
    CompletionRequest,
    Message,
    Provider,
    ProviderError,
    ToolCall,
)
from agentplane.runtime.tools import ResolvedTool, agent_kbs, resolve_tools
from agentplane.subscriptions import events
from agentplane.subscriptions.broker import get_broker

TOOL_KINDS = (StepKind.TOOL_CALL, StepKind.MEMORY_HIT, StepKind.RETRIEVAL_HIT)
# A claimed task whose trace ends at this seq holds only its `queued` step and the claim's
# `running` one: its run has nothing to rebuild, so the trace is not read.
FRESH_SEQ = 2


class MaxStepsExceeded(Exception):
    pass


class PauseRequested(Exception):
    """Someone asked to pause: the loop stops between steps; the trace keeps its state."""


@dataclass
class LoopState:
    messages: list[Message]
    model_calls: int = 0
    pending: list[ToolCall] = field(default_factory=list)  # asked for, not yet run
    final: str | None = None  # the model already answered; only completion is missing
    retrieved: bool = False  # the pre-call retrieval ran (its hits are steps)


def _context_message(payloads: list[dict[str, Any]]) -> Message:
    parts = [
        f"[{p['hit'].get('title', '')}] {p['hit']['text']}" for p in payloads if p.get("inPrompt")
    ]
    return Message(
        "system",
        "Context retrieved from the knowledge bases (cite it when relevant):\n\n"
        + "\n\n".join(parts or ["(nothing relevant was found)"]),
    )


async def _retrieve_before_call(task: Task, agent: Agent, state: LoopState, fence: int) -> None:
    """Hybrid retrieval on the task's query; each hit is a RETRIEVAL_HIT step (marked
    `preCall`, so a resumed run rebuilds the context from the trace instead of
    retrieving again), and the top `retrievalInPrompt` hits go into the prompt."""
    kb_ids = await agent_kbs(agent)
    state.retrieved = True
    if not kb_ids:
        return
    config = agent.config if isinstance(agent.config, dict) else {}
    in_prompt = int(config.get("retrievalInPrompt", 3))
    hits = await knowledge.retrieve(
        kb_ids,
        task.query,
        first=int(config.get("retrievalTopK", 5)),
        weights=weights_of(config),
    )
    payloads = []
    for hit in hits:
        payload = {
            "preCall": True,
            "query": task.query,
            "hit": hit.explain(),
            "inPrompt": hit.fused_rank <= in_prompt,
        }
        await append_step(task, StepKind.RETRIEVAL_HIT, payload, fence=fence)
        payloads.append(payload)
    if payloads:
        state.messages.insert(len(state.messages) - 1, _context_message(payloads))


def _call_json(call: ToolCall) -> dict[str, Any]:
    data: dict[str, Any] = {"id": call.id, "name": call.name, "arguments": call.arguments}
    if call.invalid_arguments is not None:
        data["invalidArguments"] = call.invalid_arguments
    return data


def _call_of(data: dict[str, Any]) -> ToolCall:
    return ToolCall(data["id"], data["name"], data["arguments"], data.get("invalidArguments"))


def _wire(message: Message) -> dict[str, Any]:
    data: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        data["toolCalls"] = [_call_json(c) for c in message.tool_calls]
    if message.tool_call_id:
        data["toolCallId"] = message.tool_call_id
    return data


async def _full_tool_payloads(steps: list[Step]) -> dict[str, dict[str, Any]]:
    """Tool results too large to keep inline were stored apart: the model gets them whole."""
    cut = [s.id for s in steps if s.kind in TOOL_KINDS and step_payloads.is_truncated(s.payload)]
    if not cut:
        return {}
    return {row.step_id: row.payload for row in await StepPayload.filter(step_id__in=cut)}


async def load_state(task: Task, agent: Agent) -> LoopState:
    """Rebuild the conversation from the trace of the current run, after the system
    prompt and the task's earlier turns (`history`).

    A run starts at the task's creation or at its latest restart (retryTask).
    """
    earlier = [Message(m["role"], m["content"]) for m in task.history]
    state = LoopState([*earlier, Message("user", task.query)])
    if agent.system_prompt:
        state.messages.insert(0, Message("system", agent.system_prompt))
    if task.last_seq <= FRESH_SEQ:  # nothing but `queued` and this claim's `running`
        return state
    steps = await Step.filter(task_id=task.id).order_by("seq")
    restarts = [i for i, s in enumerate(steps) if s.payload.get("restart")]
    run = steps[restarts[-1] + 1 if restarts else 0 :]
    full = await _full_tool_payloads(run)
    context = [s.payload for s in run if s.payload.get("preCall")]
    if context:
        state.retrieved = True
        state.messages.insert(len(state.messages) - 1, _context_message(context))
    for step in run:
        if step.payload.get("preCall"):
            continue
        if step.kind == StepKind.PROVIDER_CALL:
            calls = [_call_of(c) for c in step.payload.get("toolCalls", [])]
            response = step.payload.get("response") or ""
            state.model_calls += 1
            state.messages.append(Message("assistant", response or None, calls))
            state.pending = list(calls)
            state.final = None if calls else response
        elif step.kind in TOOL_KINDS:
            payload = full.get(step.id, step.payload)
            call_id = payload.get("callId")
            state.messages.append(Message("tool", payload.get("output"), tool_call_id=call_id))
            state.pending = [c for c in state.pending if c.id != call_id]
    return state


async def _run_tool(
    agent: Agent, task: Task, call: ToolCall, fence: int, tools: dict[str, ResolvedTool]
) -> str:
    """Run one tool call and record it as one step, after its approval if it needs one (the
    gate may stop the run to wait for a human); every failure (not allowed, unavailable,
    arguments that break the tool's schema, a timeout, an HTTP or MCP error) is recorded
    with an `errorCode` and goes back to the model as text. The only place a call runs."""
    payload: dict[str, Any] = {"tool": call.name, "callId": call.id, "arguments": call.arguments}
    kind, hits, error_code = StepKind.TOOL_CALL, None, None
    started = time.monotonic()
    tool = tools.get(call.name)
    if call.name not in agent.tools:
        error_code = "TOOL_NOT_ALLOWED"
        output = (
            f"error: tool {call.name!r} is not allowed for this agent (it may call {sorted(tools)})"
        )
    elif tool is None:
        error_code = "TOOL_UNAVAILABLE"
        output = f"error: tool {call.name!r} is not available (disabled or removed)"
    else:
        gated = await approvals.gate(agent, task, call, fence, tool)
        if isinstance(gated, str):  # refused by a human or by expiry: already recorded
            return gated
        call = gated  # approved, perhaps with edited arguments
        payload["arguments"] = call.arguments
        payload["source"] = tool.source
        if tool.server is not None:
            payload["server"] = tool.server
        problems = tool.validate(call.arguments)
        if call.invalid_arguments is not None:
            payload["arguments"] = call.invalid_arguments
            problems = ["the arguments are not a JSON object"]
        if problems:
            error_code = "TOOL_ARGUMENTS_INVALID"
            output = f"error: invalid arguments for {call.name!r}: " + "; ".join(problems)
        else:
            result = await tool.execute(agent, task, call.arguments)
            output, kind, hits, error_code = (
                result.output,
                result.kind,
                result.hits,
                result.error_code,
            )
    elapsed = time.monotonic() - started
    observability.tool_called(payload.get("source", "unknown"), error_code, elapsed)
    payload["output"] = output
    payload["latencyMs"] = round(elapsed * 1000)
    if error_code is not None:
        payload["errorCode"] = error_code
        payload["error"] = output.removeprefix("error: ")
    if hits is not None:
        payload["hits"] = hits
    await append_step(task, kind, payload, fence=fence)
    return output


async def _pause_requested(task: Task) -> bool:
    flags = await Task.filter(id=task.id).values_list("pause_requested", flat=True)
    return bool(flags and flags[0])


async def run_agent(task: Task, agent: Agent, providers: dict[str, Provider]) -> str:
    """Run (or resume) the agent on the task's query and return its final answer.

    Every write is fenced with the claim (`task.attempt`): LeaseLost ends the run
    as soon as another worker owns the task.
    """
    info = catalog.lookup(agent.model)
    if info is None or info.provider not in providers:
        raise ProviderError(f"No provider serves model {agent.model!r}")
    provider = await provider_keys.for_tenant(
        providers[info.provider], task.tenant_id, info.provider
    )
    broker = get_broker()
    output_channel = events.task_output_channel(task.id)
    fence = task.attempt

    async def on_chunk(text: str) -> None:
        await broker.publish(output_channel, {"task_id": task.id, "text": text})

    state = await load_state(task, agent)
    if state.final is not None:
        return state.final
    if state.model_calls == 0 and not state.retrieved:
        await _retrieve_before_call(task, agent, state, fence)
    resolved = await resolve_tools(agent)
    for call in state.pending:
        result = await _run_tool(agent, task, call, fence, resolved)
        state.messages.append(Message("tool", result, tool_call_id=call.id))
    tools = [tool.spec() for tool in resolved.values()]
    first = True
    while state.model_calls < agent.max_steps:
        # Before the first call the claimed row says whether a pause was asked (it was
        # read by the claim's statement); before later ones, the database.
        paused = task.pause_requested if first else await _pause_requested(task)
        first = False
        if paused:
            raise PauseRequested
        request = CompletionRequest(info.name, list(state.messages), tools, agent.config)
        hold = await budgets.reserve_call(task, info, request)  # may pause the run (RunPaused)
        started = time.monotonic()
        completion = await budgets.guarded(hold, provider.complete(request, on_chunk))
        latency_ms = round((time.monotonic() - started) * 1000)
        usage = Usage(
            model=agent.model,
            input_tokens=completion.input_tokens,
            output_tokens=completion.output_tokens,
            latency_ms=latency_ms,
            cost_usd=info.cost(completion.input_tokens, completion.output_tokens),
            priced=info.priced,
        )
        payload = {
            "prompt": [_wire(m) for m in state.messages],
            "response": completion.text,
            "toolCalls": [_call_json(c) for c in completion.tool_calls],
            "priced": info.priced,
        }
        await append_step(task, StepKind.PROVIDER_CALL, payload, usage, fence=fence)
        await budgets.settle_call(hold, usage.cost_usd)
        state.model_calls += 1
        if not completion.tool_calls:
            return completion.text
        state.messages.append(Message("assistant", completion.text or None, completion.tool_calls))
        for call in completion.tool_calls:  # in the model's order, one step each
            result = await _run_tool(agent, task, call, fence, resolved)
            state.messages.append(Message("tool", result, tool_call_id=call.id))
    raise MaxStepsExceeded(f"no final answer within {agent.max_steps} model calls")
