"""Built-in tools an agent may call, and the trace step kind each one records."""

import ast
import operator
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from agentplane.models import Agent, KnowledgeBase, StepKind, Task
from agentplane.retrieval import knowledge, memory
from agentplane.retrieval.fusion import Hit, weights_of
from agentplane.runtime.providers.base import ToolSpec


@dataclass
class ToolResult:
    kind: StepKind
    output: str
    hits: list[dict[str, Any]] | None = None


ToolFn = Callable[[Agent, Task, dict[str, Any]], Awaitable[ToolResult]]

_OPS: dict[type, Callable[..., Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def _evaluate(node: ast.AST) -> float | int:
    # Arithmetic only: walking the AST ourselves means no names, calls or attributes run.
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        right = _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > 100:
            raise ValueError("exponent too large")
        return _OPS[type(node.op)](_evaluate(node.left), right)  # type: ignore[no-any-return]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_evaluate(node.operand))  # type: ignore[no-any-return]
    raise ValueError("only numbers and + - * / // % ** are allowed")


async def calculator(agent: Agent, task: Task, args: dict[str, Any]) -> ToolResult:
    expression = str(args.get("expression", ""))
    try:
        value = _evaluate(ast.parse(expression, mode="eval").body)
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError) as exc:
        return ToolResult(StepKind.TOOL_CALL, f"error: {exc}")
    return ToolResult(StepKind.TOOL_CALL, str(value))


def knowledge_base_ids(agent: Agent) -> list[str]:
    config = agent.config if isinstance(agent.config, dict) else {}
    ids = config.get("knowledgeBases", [])
    return [str(i) for i in ids] if isinstance(ids, list) else []


async def agent_kbs(agent: Agent) -> list[str]:
    """The agent's knowledge bases that exist in its own tenant (never another's)."""
    ids = knowledge_base_ids(agent)
    if not ids:
        return []
    found = await KnowledgeBase.filter(id__in=ids, tenant_id=agent.tenant_id).values_list(
        "id", flat=True
    )
    known = set(found)
    return [i for i in ids if i in known]


def _explained(hits: list[Hit], in_prompt: bool) -> list[dict[str, Any]]:
    return [{**h.explain(), "inPrompt": in_prompt} for h in hits]


async def memory_search(agent: Agent, task: Task, args: dict[str, Any]) -> ToolResult:
    """Recall the agent's active, unexpired memories (hybrid ranking)."""
    query = str(args.get("query", ""))
    hits = await memory.recall(agent.tenant_id, agent.id, query, first=5)
    summary = "\n".join(f"- ({h.meta['type']}) {h.text}" for h in hits) or "no memories"
    return ToolResult(StepKind.MEMORY_HIT, summary, _explained(hits, True))


async def remember(agent: Agent, task: Task, args: dict[str, Any]) -> ToolResult:
    text = str(args.get("text", "")).strip()
    if not text:
        return ToolResult(StepKind.TOOL_CALL, "error: `text` is required")
    kind = str(args.get("type", "fact"))
    try:
        importance = min(max(float(args.get("importance", 0.5)), 0.0), 1.0)
    except (TypeError, ValueError):
        importance = 0.5
    try:
        expires_at = memory.expiry(args.get("ttlSeconds"))
    except (TypeError, ValueError, OverflowError):
        return ToolResult(StepKind.TOOL_CALL, "error: `ttlSeconds` must be a number of seconds")
    config = agent.config if isinstance(agent.config, dict) else {}
    saved, superseded, evict = await memory.write(
        tenant_id=agent.tenant_id,
        agent_id=agent.id,
        text=text,
        type=kind if kind in memory.TYPES else "fact",
        importance=importance,
        conflict_key=str(args["key"]) if args.get("key") else None,
        expires_at=expires_at,
        source_step_id=task.id,
        max_memories=int(config.get("maxMemories", memory.DEFAULT_MAX_MEMORIES)),
    )
    output = f"remembered {saved.id}"
    if superseded:
        output += f"; superseded {', '.join(m.id for m in superseded)}"
    if evict:
        output += "; over the memory budget, consider forgetting: " + ", ".join(
            f"{m.id} ({m.text[:40]!r}, importance {m.importance})" for m in evict
        )
    return ToolResult(StepKind.TOOL_CALL, output)


async def retrieve(agent: Agent, task: Task, args: dict[str, Any]) -> ToolResult:
    """Hybrid retrieval over the agent's knowledge bases (`config.knowledgeBases`)."""
    query = str(args.get("query", ""))
    hits = await knowledge.retrieve(
        await agent_kbs(agent), query, first=5, weights=weights_of(agent.config)
    )
    summary = "\n\n".join(f"[{h.meta['title']}] {h.text}" for h in hits) or "no documents matched"
    return ToolResult(StepKind.RETRIEVAL_HIT, summary, _explained(hits, True))


_QUERY_ARG = {
    "type": "object",
    "properties": {"query": {"type": "string"}},
    "required": ["query"],
}
TOOLS: dict[str, tuple[ToolSpec, ToolFn]] = {
    "calculator": (
        ToolSpec(
            "calculator",
            "Evaluate an arithmetic expression",
            {
                "type": "object",
                "properties": {"expression": {"type": "string"}},
                "required": ["expression"],
            },
        ),
        calculator,
    ),
    "memory_search": (
        ToolSpec("memory_search", "Recall this agent's memories", _QUERY_ARG),
        memory_search,
    ),
    "retrieve": (
        ToolSpec("retrieve", "Search the agent's knowledge bases", _QUERY_ARG),
        retrieve,
    ),
    "remember": (
        ToolSpec(
            "remember",
            "Store a memory; `key` names a fact a newer memory replaces",
            {
                "type": "object",
                "properties": {
                    "text": {"type": "string"},
                    "type": {"type": "string", "enum": list(memory.TYPES)},
                    "importance": {"type": "number"},
                    "key": {"type": "string"},
                    "ttlSeconds": {"type": "number"},
                },
                "required": ["text"],
            },
        ),
        remember,
    ),
}
TOOLS["recall"] = (ToolSpec("recall", "Recall memories", _QUERY_ARG), memory_search)
