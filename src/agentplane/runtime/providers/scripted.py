"""The built-in scripted provider: deterministic, offline models for demos and tests.

- `scripted/echo` answers with the user's query, streamed word by word.
- `scripted/agent` plays the agent's `config.script`, one turn per call:
  `{"tool": name, "arguments": {...}}` asks for a tool call, `{"tools": [{"tool": name,
  "arguments": {...}}, ...]}` for several in one turn (parallel calls), `{"say": text}`
  answers (`{query}` and `{last_tool_result}` are filled in). When the script
  runs out it answers with the last tool result, or echoes the query.

Token counts are honest: `count_tokens` of what was sent and produced.
"""

import asyncio
import json
from typing import Any

from agentplane.runtime.providers.base import (
    Completion,
    CompletionRequest,
    Message,
    OnChunk,
    ToolCall,
    count_tokens,
)


def _last(messages: list[Message], role: str) -> str:
    return next((m.content or "" for m in reversed(messages) if m.role == role), "")


def _turn_no(messages: list[Message]) -> int:
    """Model turns of this run so far: assistant messages after the last user one (the
    earlier ones are a conversation's history)."""
    last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
    return sum(1 for m in messages[last_user + 1 :] if m.role == "assistant")


def _calls(turn: dict[str, Any], turn_no: int) -> list[ToolCall]:
    if "tool" in turn:
        return [ToolCall(f"call_{turn_no}", str(turn["tool"]), dict(turn.get("arguments") or {}))]
    items = turn["tools"] if isinstance(turn["tools"], list) else []
    return [
        ToolCall(f"call_{turn_no}_{i}", str(item.get("tool")), dict(item.get("arguments") or {}))
        for i, item in enumerate(items)
        if isinstance(item, dict)
    ]


class ScriptedProvider:
    def __init__(self, delay_ms: int) -> None:
        self.delay_s = delay_ms / 1000

    async def complete(self, request: CompletionRequest, on_chunk: OnChunk) -> Completion:
        query = _last(request.messages, "user")
        tool_result = _last(request.messages, "tool")
        turn = self._turn(request)
        input_tokens = sum(count_tokens(m.content or "") for m in request.messages)
        if turn is not None and ("tool" in turn or "tools" in turn):
            calls = _calls(turn, _turn_no(request.messages))
            await asyncio.sleep(self.delay_s)
            output_tokens = sum(
                count_tokens(c.name) + count_tokens(json.dumps(c.arguments)) for c in calls
            )
            return Completion("", calls, input_tokens, output_tokens)
        if turn is not None and "say" in turn:
            text = (
                str(turn["say"])
                .replace("{query}", query)
                .replace("{last_tool_result}", tool_result)
            )
        else:
            text = tool_result or query
        await self._stream(text, on_chunk)
        return Completion(text, [], input_tokens, count_tokens(text))

    def _turn(self, request: CompletionRequest) -> dict[str, Any] | None:
        if request.model != "agent":
            return None
        script = request.config.get("script") or []
        turn_no = _turn_no(request.messages)
        return script[turn_no] if turn_no < len(script) else None

    async def _stream(self, text: str, on_chunk: OnChunk) -> None:
        words = text.split(" ")
        for i, word in enumerate(words):
            await asyncio.sleep(self.delay_s)
            await on_chunk(word if i == len(words) - 1 else word + " ")
