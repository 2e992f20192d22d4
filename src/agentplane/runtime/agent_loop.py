"""The agent loop: call the model, run the tools it asks for, until it answers."""

import time
from dataclasses import asdict
from typing import Any

from agentplane.models import Agent, StepKind, Task
from agentplane.resolvers import budgets, provider_keys
from agentplane.resolvers.traces import Usage, append_step
from agentplane.runtime import catalog
from agentplane.runtime.providers.base import (
    CompletionRequest,
    Message,
    Provider,
    ProviderError,
    ToolCall,
)
from agentplane.runtime.tools import TOOLS
from agentplane.subscriptions import events
from agentplane.subscriptions.broker import get_broker


class MaxStepsExceeded(Exception):
    pass


def _wire(message: Message) -> dict[str, Any]:
    data: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        data["toolCalls"] = [asdict(c) for c in message.tool_calls]
    if message.tool_call_id:
        data["toolCallId"] = message.tool_call_id
    return data


async def _run_tool(agent: Agent, task: Task, call: ToolCall) -> str:
    """Run one tool call and record it as a step; errors go back to the model as text."""
    entry = TOOLS.get(call.name) if call.name in agent.tools else None
    if entry is None:
        output, kind, hits = f"error: tool {call.name!r} is not enabled", StepKind.TOOL_CALL, None
    else:
        result = await entry[1](agent, task, call.arguments)
        output, kind, hits = result.output, result.kind, result.hits
    payload: dict[str, Any] = {
        "tool": call.name,
        "callId": call.id,
        "arguments": call.arguments,
        "output": output,
    }
    if hits is not None:
        payload["hits"] = hits
    await append_step(task, kind, payload)
    return output


async def run_agent(task: Task, agent: Agent, providers: dict[str, Provider]) -> str:
    """Run the agent on the task's query and return its final answer."""
    info = catalog.lookup(agent.model)
    if info is None or info.provider not in providers:
        raise ProviderError(f"No provider serves model {agent.model!r}")
    provider = await provider_keys.for_tenant(
        providers[info.provider], task.tenant_id, info.provider
    )
    broker = get_broker()
    output_channel = events.task_output_channel(task.id)

    async def on_chunk(text: str) -> None:
        await broker.publish(output_channel, {"task_id": task.id, "text": text})

    messages = [Message("user", task.query)]
    if agent.system_prompt:
        messages.insert(0, Message("system", agent.system_prompt))
    tools = [TOOLS[name][0] for name in agent.tools if name in TOOLS]
    for _ in range(agent.max_steps):
        request = CompletionRequest(info.name, list(messages), tools, agent.config)
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
            "prompt": [_wire(m) for m in messages],
            "response": completion.text,
            "toolCalls": [asdict(c) for c in completion.tool_calls],
            "priced": info.priced,
        }
        await append_step(task, StepKind.PROVIDER_CALL, payload, usage)
        await budgets.settle_call(hold, usage.cost_usd)
        if not completion.tool_calls:
            return completion.text
        messages.append(Message("assistant", completion.text or None, completion.tool_calls))
        for call in completion.tool_calls:
            result = await _run_tool(agent, task, call)
            messages.append(Message("tool", result, tool_call_id=call.id))
    raise MaxStepsExceeded(f"no final answer within {agent.max_steps} model calls")
