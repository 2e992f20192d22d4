"""Agents that call registered tools: an HTTP tool on a real local server and MCP tools
(npm server-everything and our fixture server over stdio), natively through the
OpenAI-compatible provider and through the scripted model; refusals, bad arguments,
timeouts, crashes and garbage are error steps the model sees."""

import asyncio
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from agentplane.core.config import Settings
from agentplane.models import (
    McpServer,
    McpTransport,
    Step,
    StepKind,
    StepPayload,
    Task,
    TaskStatus,
    Tenant,
)
from agentplane.resolvers import tasks, tools
from agentplane.resolvers.auth import Actor
from agentplane.runtime.worker import Worker
from tests.support.factories import PLATFORM, make_agent, make_tenant
from tests.support.http_tool_server import BIG, Recorded, serve_tools
from tests.support.openai_server import API_KEY, ServerState, serve_openai
from tests.test_durable_runs import crash, wait_for

ROOT = Path(__file__).resolve().parent.parent
EVERYTHING = ROOT / "mcp-servers/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
FIXTURE = str(ROOT / "tests/support/mcp_fixture_server.py")
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def openai_server() -> Iterator[tuple[str, ServerState]]:
    state = ServerState()
    with serve_openai(state) as base_url:
        yield base_url, state


@pytest.fixture
def tool_server() -> Iterator[tuple[str, Recorded]]:
    with serve_tools() as served:
        yield served


def admin_of(tenant: Tenant) -> Actor:
    return Actor(kind="token", role="tenant_admin", tenant_id=tenant.id, token_id="tok_admin")


async def run_task(settings: Settings, tenant: Tenant, agent_id: str, query: str) -> Task:
    worker = Worker(settings)
    await worker.start()
    try:
        actor = Actor(kind="token", role="operator", tenant_id=tenant.id)
        task = await tasks.submit_task(actor, agent_id=agent_id, query=query)
        async with asyncio.timeout(60):
            while not (task := await Task.get(id=task.id)).status.is_terminal:
                await asyncio.sleep(0.02)
        return task
    finally:
        await worker.stop()


def ok_builtin_calls() -> float:
    labels = {"source": "builtin", "outcome": "ok"}
    return REGISTRY.get_sample_value("agentplane_tool_calls_total", labels) or 0.0


async def tool_steps(task: Task) -> list[Step]:
    steps = await Step.filter(task_id=task.id).order_by("seq")
    assert [s.seq for s in steps] == list(range(1, len(steps) + 1))  # gapless
    return [s for s in steps if s.kind == StepKind.TOOL_CALL]


async def weather_tool(tenant: Tenant, base_url: str, **fields: Any) -> None:
    await tools.create_http_tool(
        admin_of(tenant),
        name="weather",
        url=f"{base_url}/weather",
        method="GET",
        description="Today's forecast for a city",
        input_schema=WEATHER_SCHEMA,
        secret_headers={"X-Api-Key": "s3cret-weather-key"},
        **fields,
    )


async def test_openai_agent_calls_an_http_and_an_mcp_tool_in_one_turn(
    services: Settings,
    openai_server: tuple[str, ServerState],
    tool_server: tuple[str, Recorded],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given an HTTP tool on a real local server and server-everything registered over stdio
    base_url, state = openai_server
    settings = Settings(
        **{**services.__dict__, "openai_base_url": base_url, "openai_api_key": API_KEY}
    )
    tenant = await make_tenant("acme")
    await weather_tool(tenant, tool_server[0])
    assert EVERYTHING.exists(), "run `make test` (it runs npm ci in mcp-servers/)"
    server = await tools.register_mcp_server(
        PLATFORM,
        name="everything",
        transport=McpTransport.STDIO,
        command="node",
        args=[str(EVERYTHING), "stdio"],
        tenant="acme",
    )
    assert server.status == "ready", server.status_message
    agent = await make_agent(
        tenant,
        model="openai/gpt-4o-mini",
        tools=["weather", "everything__echo", "everything__get-env"],
    )
    monkeypatch.setenv("AGENTPLANE_SECRET_KEY", "must-not-reach-mcp-servers")
    # when the model asks for both in one turn (parallel tool calls)
    query = (
        'call tools: [{"name": "weather", "arguments": {"city": "Paris"}},'
        ' {"name": "everything__echo", "arguments": {"message": "hi there"}},'
        ' {"name": "everything__get-env", "arguments": {}}]'
    )
    task = await run_task(settings, tenant, agent.id, query)
    # then both ran, recorded as separate steps in the model's order, and the model saw both
    assert task.status == TaskStatus.COMPLETED, task.error
    weather, echo, env = await tool_steps(task)
    assert weather.payload["tool"] == "weather"
    assert weather.payload["source"] == "http"
    assert weather.payload["server"] == tool_server[0]
    assert weather.payload["arguments"] == {"city": "Paris"}
    assert weather.payload["output"] == '{"city":"Paris","forecast":"sunny"}'
    assert "error" not in weather.payload
    assert isinstance(weather.payload["latencyMs"], int)
    assert echo.payload["tool"] == "everything__echo"
    assert (echo.payload["source"], echo.payload["server"]) == ("mcp", "everything")
    assert echo.payload["output"] == "Echo: hi there"
    assert weather.seq < echo.seq < env.seq
    weather_json = '{"city":"Paris","forecast":"sunny"}'
    assert task.output == f"Tool said: {weather_json} | Echo: hi there | {env.payload['output']}"
    # a stdio server gets a minimal environment, never the worker's secrets
    assert '"PATH"' in env.payload["output"]
    assert "AGENTPLANE" not in env.payload["output"]
    # the tools went to the model as `tools`, with their schemas
    sent = {t["function"]["name"]: t["function"] for t in state.last_request["tools"]}  # type: ignore[index]
    assert set(sent) == {"weather", "everything__echo", "everything__get-env"}
    assert sent["weather"]["parameters"]["required"] == ["city"]
    # and the HTTP tool got its secret header and its argument as a query parameter
    [request] = tool_server[1].requests
    assert request["query"] == {"city": "Paris"}
    assert request["headers"]["x-api-key"] == "s3cret-weather-key"


async def test_arguments_that_are_not_json_are_an_error_the_model_sees(
    services: Settings,
    openai_server: tuple[str, ServerState],
    tool_server: tuple[str, Recorded],
) -> None:
    base_url, state = openai_server
    settings = Settings(
        **{**services.__dict__, "openai_base_url": base_url, "openai_api_key": API_KEY}
    )
    tenant = await make_tenant("acme")
    await weather_tool(tenant, tool_server[0])
    agent = await make_agent(tenant, model="openai/gpt-4o-mini", tools=["weather"])
    query = 'call tools: [{"name": "weather", "raw": "{\\"city\\": "}]'
    task = await run_task(settings, tenant, agent.id, query)
    assert task.status == TaskStatus.COMPLETED, task.error
    [step] = await tool_steps(task)
    assert step.payload["errorCode"] == "TOOL_ARGUMENTS_INVALID"
    assert step.payload["arguments"] == '{"city": '
    assert task.output == f"Tool said: {step.payload['output']}"
    assert tool_server[1].requests == []
    # the model got its own text back with the error
    assistant = next(m for m in state.last_request["messages"] if m.get("tool_calls"))  # type: ignore[index]
    assert assistant["tool_calls"][0]["function"]["arguments"] == '{"city": '


async def test_scripted_parallel_calls_are_separate_steps_in_order(services: Settings) -> None:
    tenant = await make_tenant("acme")
    script = [
        {
            "tools": [
                {"tool": "calculator", "arguments": {"expression": "1+1"}},
                {"tool": "calculator", "arguments": {"expression": "2*3"}},
                {"tool": "calculator", "arguments": {"expression": "10-1"}},
            ]
        },
        {"say": "last was {last_tool_result}"},
    ]
    agent = await make_agent(
        tenant, model="scripted/agent", tools=["calculator"], config={"script": script}
    )
    before = ok_builtin_calls()
    task = await run_task(services, tenant, agent.id, "sums")
    assert task.status == TaskStatus.COMPLETED, task.error
    steps = await tool_steps(task)
    assert [s.payload["callId"] for s in steps] == ["call_0_0", "call_0_1", "call_0_2"]
    assert [s.payload["output"] for s in steps] == ["2", "6", "9"]
    assert {s.payload["source"] for s in steps} == {"builtin"}
    assert task.output == "last was 9"
    assert ok_builtin_calls() == before + 3  # /metrics counts them


async def test_a_tool_the_agent_may_not_use_is_refused_before_any_call(
    services: Settings, tool_server: tuple[str, Recorded]
) -> None:
    # given a registered HTTP tool the agent does not list
    tenant = await make_tenant("acme")
    await weather_tool(tenant, tool_server[0])
    script = [{"tool": "weather", "arguments": {"city": "Oslo"}}, {"say": "{last_tool_result}"}]
    agent = await make_agent(
        tenant, model="scripted/agent", tools=["calculator"], config={"script": script}
    )
    task = await run_task(services, tenant, agent.id, "weather?")
    # then the call is an error step and the tool's server never heard of it
    [step] = await tool_steps(task)
    assert step.payload["errorCode"] == "TOOL_NOT_ALLOWED"
    assert step.payload["error"] == (
        "tool 'weather' is not allowed for this agent (it may call ['calculator'])"
    )
    assert tool_server[1].requests == []
    assert task.status == TaskStatus.COMPLETED


async def test_a_disabled_tool_is_unavailable(
    services: Settings, tool_server: tuple[str, Recorded]
) -> None:
    tenant = await make_tenant("acme")
    await weather_tool(tenant, tool_server[0])
    tool = await tools.get_tool_by_name(admin_of(tenant), "weather")
    await tools.update_tool(admin_of(tenant), tool.id, enabled=False)
    script = [{"tool": "weather", "arguments": {"city": "Oslo"}}]
    agent = await make_agent(
        tenant, model="scripted/agent", tools=["weather"], config={"script": script}
    )
    task = await run_task(services, tenant, agent.id, "weather?")
    [step] = await tool_steps(task)
    assert step.payload["errorCode"] == "TOOL_UNAVAILABLE"
    assert tool_server[1].requests == []


async def test_arguments_that_break_the_schema_are_an_error_the_model_sees(
    services: Settings, tool_server: tuple[str, Recorded]
) -> None:
    tenant = await make_tenant("acme")
    await weather_tool(tenant, tool_server[0])
    script = [
        {"tool": "weather", "arguments": {"city": 5, "when": "now"}},
        {"say": "model saw: {last_tool_result}"},
    ]
    agent = await make_agent(
        tenant, model="scripted/agent", tools=["weather"], config={"script": script}
    )
    task = await run_task(services, tenant, agent.id, "weather?")
    assert task.status == TaskStatus.COMPLETED, task.error
    [step] = await tool_steps(task)
    assert step.payload["errorCode"] == "TOOL_ARGUMENTS_INVALID"
    assert "city: 5 is not of type 'string'" in step.payload["error"]
    assert "'when' was unexpected" in step.payload["error"]
    assert task.output == f"model saw: {step.payload['output']}"
    assert tool_server[1].requests == []


async def test_http_failures_time_outs_and_large_results(
    services: Settings, tool_server: tuple[str, Recorded]
) -> None:
    # given HTTP tools that fail, hang past their timeout, and answer 20,000 characters
    base, _ = tool_server
    tenant = await make_tenant("acme")
    admin = admin_of(tenant)
    await tools.create_http_tool(admin, name="fail", url=f"{base}/fail", method="GET")
    await tools.create_http_tool(
        admin, name="slow", url=f"{base}/slow", method="GET", timeout_s=0.5
    )
    await tools.create_http_tool(admin, name="big", url=f"{base}/big", method="GET")
    script = [
        {"tools": [{"tool": "fail"}, {"tool": "slow"}, {"tool": "big"}]},
        {"say": "{last_tool_result}"},
    ]
    agent = await make_agent(
        tenant, model="scripted/agent", tools=["fail", "slow", "big"], config={"script": script}
    )
    started = time.monotonic()
    task = await run_task(services, tenant, agent.id, "go")
    # then each is one step, the slow one cut at its timeout, the big one stored apart whole
    assert task.status == TaskStatus.COMPLETED, task.error
    assert time.monotonic() - started < 4
    fail, slow, big = await tool_steps(task)
    assert (fail.payload["errorCode"], fail.payload["error"]) == (
        "HTTP_ERROR",
        "HTTP 500: upstream exploded",
    )
    assert slow.payload["errorCode"] == "TOOL_TIMEOUT"
    assert "within 0.5s" in slow.payload["error"]
    assert big.payload["_truncated"]["sizeBytes"] > 20_000
    assert len(big.payload["output"]) == 1024
    full = await StepPayload.get(step_id=big.id)
    assert full.payload["output"] == BIG
    assert task.output == BIG  # the model got the whole result


async def test_mcp_servers_that_hang_crash_or_write_garbage_fail_the_call_not_the_worker(
    services: Settings,
) -> None:
    # given our fixture server (a tool that hangs, one that crashes) and one writing garbage
    tenant = await make_tenant("acme")
    fixture = await tools.register_mcp_server(
        PLATFORM,
        name="fixture",
        transport=McpTransport.STDIO,
        command=sys.executable,
        args=[FIXTURE],
        tenant="acme",
    )
    assert fixture.status == "ready", fixture.status_message
    # the same server again, with a short timeout, for the tool that hangs
    short = await tools.register_mcp_server(
        PLATFORM,
        name="short",
        transport=McpTransport.STDIO,
        command=sys.executable,
        args=[FIXTURE],
        timeout_s=5,
        tenant="acme",
    )
    assert short.status == "ready", short.status_message
    script = [
        {
            "tools": [
                {"tool": "short__hang"},
                {"tool": "fixture__crash"},
                {"tool": "fixture__add", "arguments": {"a": 2, "b": 3}},
            ]
        },
        {"say": "{last_tool_result}"},
    ]
    agent = await make_agent(
        tenant,
        model="scripted/agent",
        tools=["short__hang", "fixture__crash", "fixture__add"],
        config={"script": script},
    )
    started = time.monotonic()
    task = await run_task(services, tenant, agent.id, "go")
    assert task.status == TaskStatus.COMPLETED, task.error
    hang, crash, add = await tool_steps(task)
    assert hang.payload["errorCode"] == "MCP_TIMEOUT"
    assert hang.payload["latencyMs"] < 6000
    assert crash.payload["errorCode"] == "MCP_UNAVAILABLE"
    assert "closed the connection" in crash.payload["error"]
    assert (add.payload["output"], add.payload["server"]) == ("5", "fixture")
    assert task.output == "5"
    assert time.monotonic() - started < 25
    # and a server that writes garbage is registered with its error, and fails calls at once
    garbage = await tools.register_mcp_server(
        PLATFORM,
        name="garbage",
        transport=McpTransport.STDIO,
        command=sys.executable,
        args=[FIXTURE, "garbage"],
        tenant="acme",
    )
    assert garbage.status == "error"
    assert garbage.status_message.startswith("MCP_PROTOCOL: ")
    # and a listed server that turns to garbage later fails that call with a protocol error
    await McpServer.filter(id=fixture.id).update(args=[FIXTURE, "garbage"])
    again = await make_agent(
        tenant,
        name="again",
        model="scripted/agent",
        tools=["fixture__add"],
        config={"script": [{"tool": "fixture__add", "arguments": {"a": 1, "b": 1}}]},
    )
    task = await run_task(services, tenant, again.id, "go")
    [step] = await tool_steps(task)
    assert step.payload["errorCode"] == "MCP_PROTOCOL"
    assert "non-JSON-RPC" in step.payload["error"]


async def test_a_takeover_replays_recorded_calls_and_runs_only_the_rest(
    services: Settings, tool_server: tuple[str, Recorded]
) -> None:
    # given three parallel HTTP calls, the second slow, on worker A
    base, recorded = tool_server
    settings = replace(services, lease_ttl_s=0.6)
    tenant = await make_tenant("acme")
    admin = admin_of(tenant)
    await weather_tool(tenant, base)
    await tools.create_http_tool(admin, name="slow", url=f"{base}/slow", method="GET")
    script = [
        {
            "tools": [
                {"tool": "weather", "arguments": {"city": "Paris"}},
                {"tool": "slow"},
                {"tool": "weather", "arguments": {"city": "Rome"}},
            ]
        },
        {"say": "{last_tool_result}"},
    ]
    agent = await make_agent(
        tenant, model="scripted/agent", tools=["weather", "slow"], config={"script": script}
    )
    first = Worker(settings)
    await first.start()
    actor = Actor(kind="token", role="operator", tenant_id=tenant.id)
    task = await tasks.submit_task(actor, agent_id=agent.id, query="go")
    async with asyncio.timeout(20):  # Paris recorded, the slow call in flight
        while len(recorded.requests) < 2:
            await asyncio.sleep(0.01)
    # when A dies mid-call and B takes over
    crash(first)
    second = Worker(settings)
    await second.start()
    try:
        done = await wait_for(task.id, TaskStatus.COMPLETED, TaskStatus.FAILED, timeout=30)
    finally:
        await second.stop()
    # then the recorded call was not made again; the unrecorded ones ran once more, in order
    assert done.status == TaskStatus.COMPLETED, done.error
    steps = await tool_steps(done)
    assert [s.payload["callId"] for s in steps] == ["call_0_0", "call_0_1", "call_0_2"]
    cities = [r["query"].get("city") for r in recorded.requests if r["path"] == "/weather"]
    assert cities == ["Paris", "Rome"]
    assert [r["path"] for r in recorded.requests].count("/slow") == 2
    assert done.output == '{"city":"Rome","forecast":"sunny"}'
