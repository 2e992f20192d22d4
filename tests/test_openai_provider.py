"""OpenAICompatProvider against a real local server speaking the OpenAI protocol."""

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from agentplane.runtime.providers.base import (
    CompletionRequest,
    Message,
    ProviderError,
    ToolSpec,
)
from agentplane.runtime.providers.openai_compat import OpenAICompatProvider
from tests.support.openai_server import API_KEY, ServerState, serve_openai

WEATHER_TOOL = ToolSpec(
    name="get_weather",
    description="Current weather for a city.",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
)


@dataclass
class Server:
    base_url: str
    state: ServerState


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    state = ServerState()
    with serve_openai(state) as base_url:
        yield Server(base_url, state)


class Chunks:
    """An on_chunk callback that records what it was given."""

    def __init__(self) -> None:
        self.received: list[str] = []

    async def __call__(self, text: str) -> None:
        self.received.append(text)


async def test_streams_plain_answer_with_server_usage(server: Server) -> None:
    provider = OpenAICompatProvider(server.base_url, API_KEY)
    chunks = Chunks()
    request = CompletionRequest(
        model="test-model",
        messages=[Message("system", "Be brief."), Message("user", "hello there world")],
    )

    completion = await provider.complete(request, chunks)

    assert completion.text == "You said: hello there world"
    assert completion.tool_calls == []
    assert len(chunks.received) > 1
    assert "".join(chunks.received) == completion.text
    # The server counts words: 2 + 3 in the prompt, 5 in the answer.
    assert (completion.input_tokens, completion.output_tokens) == (5, 5)

    sent = server.state.last_request
    assert sent is not None
    assert sent["model"] == "test-model"
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello there world"},
    ]
    assert "tools" not in sent  # omitted when no tools are offered


async def test_tool_call_round_trip(server: Server) -> None:
    provider = OpenAICompatProvider(server.base_url, API_KEY)
    messages = [Message("user", "What is the weather in Paris?")]

    first = await provider.complete(
        CompletionRequest(model="test-model", messages=messages, tools=[WEATHER_TOOL]), Chunks()
    )

    assert first.text == ""
    assert len(first.tool_calls) == 1
    call = first.tool_calls[0]
    assert call.id
    assert call.name == "get_weather"
    assert call.arguments == {"city": "Paris"}
    assert first.output_tokens == 2  # words in '{"city": "Paris"}'

    sent = server.state.last_request
    assert sent is not None
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather for a city.",
                "parameters": WEATHER_TOOL.parameters,
            },
        }
    ]

    messages += [
        Message("assistant", None, tool_calls=[call]),
        Message("tool", "18C and sunny", tool_call_id=call.id),
    ]
    chunks = Chunks()
    second = await provider.complete(
        CompletionRequest(model="test-model", messages=messages, tools=[WEATHER_TOOL]), chunks
    )

    assert second.text == "Tool said: 18C and sunny"
    assert second.tool_calls == []
    assert "".join(chunks.received) == second.text

    sent = server.state.last_request
    assert sent is not None
    assistant, tool = sent["messages"][-2:]
    arguments = assistant["tool_calls"][0]["function"].pop("arguments")
    assert json.loads(arguments) == {"city": "Paris"}  # sent as a JSON string
    assert assistant == {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": call.id, "type": "function", "function": {"name": "get_weather"}}],
    }
    assert tool == {"role": "tool", "content": "18C and sunny", "tool_call_id": call.id}


async def test_estimates_tokens_when_server_sends_no_usage(server: Server) -> None:
    provider = OpenAICompatProvider(server.base_url, API_KEY)
    request = CompletionRequest(model="test-model", messages=[Message("user", "hi, you")])
    server.state.send_usage = False
    try:
        completion = await provider.complete(request, Chunks())
    finally:
        server.state.send_usage = True

    assert completion.text == "You said: hi, you"
    # Words and punctuation: "hi , you" -> 3; "You said : hi , you" -> 6.
    assert (completion.input_tokens, completion.output_tokens) == (3, 6)


async def test_uses_injected_client(server: Server) -> None:
    async with httpx.AsyncClient() as client:
        provider = OpenAICompatProvider(server.base_url, API_KEY, client=client)
        request = CompletionRequest(model="m", messages=[Message("user", "ping")])
        first = await provider.complete(request, Chunks())
        second = await provider.complete(request, Chunks())
        assert not client.is_closed  # the provider must not close a client it was given

    assert first.text == second.text == "You said: ping"


async def test_wrong_api_key_raises_without_leaking_key(server: Server) -> None:
    secret = "sk-wrong-secret-1234"
    provider = OpenAICompatProvider(server.base_url, secret)
    request = CompletionRequest(model="m", messages=[Message("user", "hello")])

    with pytest.raises(ProviderError) as excinfo:
        await provider.complete(request, Chunks())

    message = str(excinfo.value)
    assert "401" in message
    assert "Incorrect API key provided" in message  # the server's own message
    assert secret not in message  # even though the server echoed it


async def test_missing_api_key_sends_no_auth_header(server: Server) -> None:
    provider = OpenAICompatProvider(server.base_url, None)
    request = CompletionRequest(model="m", messages=[Message("user", "hello")])

    with pytest.raises(ProviderError, match=r"401.*Missing API key"):
        await provider.complete(request, Chunks())


async def test_unreachable_server_raises() -> None:
    # A port that was free a moment ago: nothing listens there now.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = OpenAICompatProvider(f"http://127.0.0.1:{port}/v1", API_KEY, timeout_s=5)
    request = CompletionRequest(model="m", messages=[Message("user", "hello")])

    with pytest.raises(ProviderError, match=f"127.0.0.1:{port}"):
        await provider.complete(request, Chunks())


def test_server_also_answers_without_streaming(server: Server) -> None:
    # The fake server speaks the non-streaming protocol too; check it stays honest.
    response = httpx.post(
        f"{server.base_url}/chat/completions",
        headers={"Authorization": f"Bearer {API_KEY}"},
        json={"model": "m", "messages": [{"role": "user", "content": "hi there"}]},
    )

    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "You said: hi there"}
    assert body["usage"]["prompt_tokens"] == 2
    assert body["usage"]["completion_tokens"] == 4
