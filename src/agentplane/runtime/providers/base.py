"""The one interface every model provider implements."""

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

# Called with each text chunk as the model generates it (live output, best effort).
OnChunk = Callable[[str], Awaitable[None]]


@dataclass
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]  # JSON schema of the arguments


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]
    # Set when the model sent arguments that are not a JSON object: the call is then an
    # error the model sees (TOOL_ARGUMENTS_INVALID), and this text is what it sent.
    invalid_arguments: str | None = None


@dataclass
class Message:
    """A chat message in OpenAI's shape: role system|user|assistant|tool."""

    role: str
    content: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None


@dataclass
class CompletionRequest:
    model: str  # the provider's own model name, without our `provider/` prefix
    messages: list[Message]
    tools: list[ToolSpec] = field(default_factory=list)
    # Agent configuration the provider may use (the scripted provider reads `script`).
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class Completion:
    text: str
    tool_calls: list[ToolCall]
    input_tokens: int
    output_tokens: int


class ProviderError(Exception):
    """A provider call failed (network, HTTP status, malformed answer)."""


class Provider(Protocol):
    async def complete(self, request: CompletionRequest, on_chunk: OnChunk) -> Completion: ...


_TOKEN_RE = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    """Word-and-punctuation token count: the scripted model's own tokenizer, and the
    estimate used when a server reports no usage."""
    return len(_TOKEN_RE.findall(text))
