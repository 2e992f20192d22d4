"""A tiny, deterministic server speaking OpenAI's chat-completions protocol.

Runs in a real uvicorn server so provider tests exercise real HTTP and SSE.

Behaviour, by the last message:
- a user message mentioning "weather", with tools offered: a call to the first tool
  with arguments {"city": "Paris"}, streamed in several argument fragments;
- a user message `call tools: [{"name": …, "arguments": {…}}, …]`: those calls, all in
  one turn (parallel tool calls), each streamed in two fragments (`"raw": "…"` instead of
  `arguments` sends that text as the arguments, JSON or not);
- tool messages: "Tool said: <content>" (several trailing ones joined by " | ");
- anything else: "You said: <last user content>", streamed word by word.
Usage: prompt_tokens = words in all message contents, completion_tokens = words in
the answer (for a tool call, in its JSON arguments).
"""

import json
import re
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

API_KEY = "test-key"
TOOL_ARGUMENT_FRAGMENTS = ('{"city": ', '"Paris"}')


@dataclass
class ServerState:
    """What tests can inspect or tweak while the server runs."""

    last_request: dict[str, Any] | None = None
    # False emulates servers that ignore `stream_options.include_usage`.
    send_usage: bool = True


def create_app(state: ServerState) -> Starlette:
    async def chat_completions(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            given = request.headers.get("authorization", "").removeprefix("Bearer ")
            # Echo the rejected key, as some real servers do, so clients must redact it.
            message = f"Incorrect API key provided: {given}" if given else "Missing API key"
            return _error(401, message, "invalid_request_error", "invalid_api_key")
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return _error(400, "Request body is not valid JSON", "invalid_request_error")
        if not isinstance(body, dict) or not body.get("messages") or not body.get("model"):
            return _error(400, "'model' and 'messages' are required", "invalid_request_error")
        state.last_request = body

        answer = _answer(body["messages"], body.get("tools") or [])
        usage = {
            "prompt_tokens": sum(_words(m.get("content")) for m in body["messages"]),
            "completion_tokens": _words(
                answer.text or " ".join("".join(c.fragments) for c in answer.calls)
            ),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:12]}"

        if not body.get("stream"):
            return JSONResponse(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": answer.message(),
                            "finish_reason": answer.finish_reason,
                        }
                    ],
                    "usage": usage,
                }
            )

        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        chunks = _stream_chunks(completion_id, body["model"], answer)
        if include_usage and state.send_usage:
            chunks.append(_chunk(completion_id, body["model"], choices=[], usage=usage))
        return StreamingResponse(_sse(chunks), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", chat_completions, methods=["POST"])])


@dataclass
class _Call:
    id: str
    name: str
    fragments: tuple[str, ...]


@dataclass
class _Answer:
    text: str = ""
    calls: tuple[_Call, ...] = ()

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.calls else "stop"

    def message(self) -> dict[str, Any]:
        if not self.calls:
            return {"role": "assistant", "content": self.text}
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": "".join(call.fragments)},
                }
                for call in self.calls
            ],
        }


def _call(name: str, fragments: tuple[str, ...]) -> _Call:
    return _Call(f"call_{uuid.uuid4().hex[:8]}", name, fragments)


def _answer(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> _Answer:
    last = messages[-1]
    content = last.get("content") or ""
    if last.get("role") == "user" and content.startswith("call tools:"):
        asked = json.loads(content.removeprefix("call tools:"))
        calls = []
        for item in asked:
            text = item["raw"] if "raw" in item else json.dumps(item.get("arguments", {}))
            calls.append(_call(item["name"], (text[: len(text) // 2], text[len(text) // 2 :])))
        return _Answer(calls=tuple(calls))
    if last.get("role") == "user" and tools and re.search(r"\bweather\b", content, re.I):
        return _Answer(calls=(_call(tools[0]["function"]["name"], TOOL_ARGUMENT_FRAGMENTS),))
    if last.get("role") == "tool":
        results = []
        for message in reversed(messages):
            if message.get("role") != "tool":
                break
            results.append(message.get("content") or "")
        return _Answer(text="Tool said: " + " | ".join(reversed(results)))
    last_user: dict[str, Any] = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    return _Answer(text=f"You said: {last_user.get('content') or ''}")


def _stream_chunks(completion_id: str, model: str, answer: _Answer) -> list[dict[str, Any]]:
    chunks = [_chunk(completion_id, model, {"role": "assistant", "content": ""})]
    for index, tool_call in enumerate(answer.calls):
        # The first fragment carries id and name; later ones only argument text.
        first, *rest = tool_call.fragments
        call = {
            "index": index,
            "id": tool_call.id,
            "type": "function",
            "function": {"name": tool_call.name, "arguments": first},
        }
        chunks.append(_chunk(completion_id, model, {"tool_calls": [call]}))
        for fragment in rest:
            delta = {"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}
            chunks.append(_chunk(completion_id, model, delta))
    if not answer.calls:
        # Word by word, each piece keeping its leading whitespace.
        for piece in re.findall(r"\s*\S+", answer.text):
            chunks.append(_chunk(completion_id, model, {"content": piece}))
    chunks.append(_chunk(completion_id, model, {}, finish_reason=answer.finish_reason))
    return chunks


def _chunk(
    completion_id: str,
    model: str,
    delta: dict[str, Any] | None = None,
    finish_reason: str | None = None,
    choices: list[dict[str, Any]] | None = None,
    usage: dict[str, int] | None = None,
) -> dict[str, Any]:
    if choices is None:
        choices = [{"index": 0, "delta": delta or {}, "finish_reason": finish_reason}]
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": usage,
    }


async def _sse(chunks: list[dict[str, Any]]) -> AsyncIterator[str]:
    for chunk in chunks:
        yield f"data: {json.dumps(chunk)}\n\n"
    yield "data: [DONE]\n\n"


def _words(content: Any) -> int:
    return len(content.split()) if isinstance(content, str) else 0


def _error(status: int, message: str, type_: str, code: str | None = None) -> JSONResponse:
    error = {"message": message, "type": type_, "param": None, "code": code}
    return JSONResponse({"error": error}, status_code=status)


@contextmanager
def serve_openai(state: ServerState | None = None) -> Iterator[str]:
    """Run the server on a free 127.0.0.1 port; yield its base URL (ending in /v1)."""
    app = create_app(state if state is not None else ServerState())
    # Bind the socket ourselves so the port is known and cannot be taken meanwhile.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        _wait_until_accepting(port, thread)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _wait_until_accepting(port: int, thread: threading.Thread, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not thread.is_alive():
            raise RuntimeError("test OpenAI server exited during startup")
        try:
            with closing(socket.create_connection(("127.0.0.1", port), timeout=0.5)):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"test OpenAI server did not start on port {port}")
