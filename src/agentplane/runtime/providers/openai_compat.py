"""A provider for any server speaking OpenAI's chat-completions protocol.

Works with OpenAI itself and with compatible servers (vLLM, Ollama, llama.cpp,
LiteLLM, ...). Always streams, so text reaches `on_chunk` as it is generated.
"""

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from agentplane.runtime.providers.base import (
    Completion,
    CompletionRequest,
    Message,
    OnChunk,
    ProviderError,
    ToolCall,
    ToolSpec,
    count_tokens,
)

# Error bodies can be whole HTML pages; keep messages readable.
_MAX_ERROR_CHARS = 500


@dataclass
class _PartialToolCall:
    """A tool call as it arrives: fragments keyed by the delta's `index`."""

    id: str = ""
    name: str = ""
    arguments: str = ""


class OpenAICompatProvider:
    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        timeout_s: float = 60.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._api_key = api_key
        self._timeout_s = timeout_s
        # An injected client is reused (connection pooling) and never closed by us.
        self._client = client

    def with_api_key(self, api_key: str) -> "OpenAICompatProvider":
        """The same server, called with a tenant's own key."""
        clone = OpenAICompatProvider("", api_key, self._timeout_s, self._client)
        clone._url = self._url
        return clone

    async def complete(self, request: CompletionRequest, on_chunk: OnChunk) -> Completion:
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [_wire_message(m) for m in request.messages],
            "stream": True,
            # Without this, streamed answers carry no token counts.
            "stream_options": {"include_usage": True},
        }
        max_output = request.config.get("maxOutputTokens")
        if isinstance(max_output, int) and max_output > 0:  # the budget reserved for this much
            body["max_tokens"] = max_output
        if request.tools:  # some servers reject an empty `tools` list
            body["tools"] = [_wire_tool(t) for t in request.tools]
        headers = {"Accept": "text/event-stream"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"

        try:
            if self._client is not None:
                return await self._stream(self._client, body, headers, request, on_chunk)
            async with httpx.AsyncClient() as client:
                return await self._stream(client, body, headers, request, on_chunk)
        except httpx.TimeoutException as e:
            raise ProviderError(f"{self._url}: timed out after {self._timeout_s}s") from e
        except (httpx.HTTPError, httpx.InvalidURL) as e:
            raise ProviderError(self._redact(f"{self._url}: {type(e).__name__}: {e}")) from e

    async def _stream(
        self,
        client: httpx.AsyncClient,
        body: dict[str, Any],
        headers: dict[str, str],
        request: CompletionRequest,
        on_chunk: OnChunk,
    ) -> Completion:
        text_parts: list[str] = []
        partial_calls: dict[int, _PartialToolCall] = {}
        usage: dict[str, Any] = {}
        saw_chunk = False

        async with client.stream(
            "POST", self._url, json=body, headers=headers, timeout=self._timeout_s
        ) as response:
            if response.status_code >= 400:
                await response.aread()
                raise ProviderError(self._http_error(response))

            async for data in _sse_data(response):
                if data == "[DONE]":
                    break
                chunk = _parse_chunk(data)
                saw_chunk = True
                if "error" in chunk:  # servers may report failures mid-stream
                    raise ProviderError(self._redact(f"{self._url}: {_error_text(chunk)}"))
                if chunk.get("usage"):  # the final chunk (choices == []) carries usage
                    usage = chunk["usage"]
                choices = chunk.get("choices") or []
                if not choices:
                    continue
                delta = choices[0].get("delta") or {}
                if text := delta.get("content"):
                    text_parts.append(text)
                    await on_chunk(text)
                for position, fragment in enumerate(delta.get("tool_calls") or []):
                    index = fragment.get("index", position)
                    partial = partial_calls.setdefault(index, _PartialToolCall())
                    function = fragment.get("function") or {}
                    # id and name arrive whole (once); only arguments are split up.
                    partial.id = fragment.get("id") or partial.id
                    partial.name = function.get("name") or partial.name
                    partial.arguments += function.get("arguments") or ""

        if not saw_chunk:
            # e.g. a server that ignored `stream: true` and sent plain JSON.
            raise ProviderError(f"{self._url}: response contained no stream chunks")

        text = "".join(text_parts)
        tool_calls = [_finish_tool_call(i, partial_calls[i]) for i in sorted(partial_calls)]
        input_tokens = usage.get("prompt_tokens")
        output_tokens = usage.get("completion_tokens")
        # Servers that ignore `include_usage` send no counts. Estimate them by counting
        # words and punctuation marks: rough, but keeps token accounting non-zero.
        if not isinstance(input_tokens, int):
            input_tokens = count_tokens(_prompt_text(request))
        if not isinstance(output_tokens, int):
            output_tokens = count_tokens(
                text + "".join(p.arguments for p in partial_calls.values())
            )
        return Completion(
            text=text,
            tool_calls=tool_calls,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
        )

    def _http_error(self, response: httpx.Response) -> str:
        detail = response.text.strip()
        try:
            detail = _error_text(response.json())
        except ValueError:
            pass  # not JSON: keep the raw (truncated) body
        message = f"{self._url}: HTTP {response.status_code}"
        if detail:
            message += f": {detail[:_MAX_ERROR_CHARS]}"
        return self._redact(message)

    def _redact(self, message: str) -> str:
        # Some servers echo the key they rejected; never let it reach logs or users.
        if self._api_key:
            message = message.replace(self._api_key, "***")
        return message


async def _sse_data(response: httpx.Response) -> AsyncIterator[str]:
    """Yield the data of each server-sent event (multi-line data joined by newlines)."""
    lines: list[str] = []
    async for line in response.aiter_lines():
        if line.startswith("data:"):
            lines.append(line[5:].removeprefix(" "))
        elif not line and lines:  # a blank line ends the event
            yield "\n".join(lines)
            lines = []
        # Other fields (`event:`, `id:`) and `:` keep-alive comments are not used here.
    if lines:
        yield "\n".join(lines)


def _parse_chunk(data: str) -> dict[str, Any]:
    try:
        chunk = json.loads(data)
    except json.JSONDecodeError as e:
        raise ProviderError(f"malformed stream chunk: {data[:_MAX_ERROR_CHARS]!r}") from e
    if not isinstance(chunk, dict):
        raise ProviderError(f"unexpected stream chunk: {data[:_MAX_ERROR_CHARS]!r}")
    return chunk


def _error_text(payload: Any) -> str:
    """The human-readable part of an error body, in OpenAI's shape or close to it."""
    if isinstance(payload, dict):
        error = payload.get("error", payload)
        if isinstance(error, dict):
            for key in ("message", "detail"):
                if isinstance(error.get(key), str):
                    return error[key]
        elif isinstance(error, str):
            return error
    return json.dumps(payload)[:_MAX_ERROR_CHARS]


def _finish_tool_call(index: int, partial: _PartialToolCall) -> ToolCall:
    # The id is needed to pair the tool result with its call; invent one if missing.
    call_id = partial.id or f"call_{index}"
    try:
        # Tools without parameters may stream no argument text at all.
        arguments = json.loads(partial.arguments or "{}")
    except json.JSONDecodeError:
        arguments = None
    if not isinstance(arguments, dict):  # the agent loop answers it with an error step
        return ToolCall(call_id, partial.name, {}, partial.arguments[: _MAX_ERROR_CHARS * 8])
    return ToolCall(id=call_id, name=partial.name, arguments=arguments)


def _wire_message(message: Message) -> dict[str, Any]:
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        wire["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                # The protocol carries arguments as a JSON-encoded string.
                "function": {
                    "name": call.name,
                    "arguments": call.invalid_arguments
                    if call.invalid_arguments is not None
                    else json.dumps(call.arguments),
                },
            }
            for call in message.tool_calls
        ]
    elif message.content is None:
        wire["content"] = ""  # only assistant tool-call messages may have null content
    if message.tool_call_id is not None:
        wire["tool_call_id"] = message.tool_call_id
    return wire


def _wire_tool(tool: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
        },
    }


def _prompt_text(request: CompletionRequest) -> str:
    parts: list[str] = []
    for message in request.messages:
        parts.append(message.content or "")
        parts.extend(json.dumps(call.arguments) for call in message.tool_calls)
    return "\n".join(parts)
