"""Built-in tools an agent may call, and the trace step kind each one records."""

import ast
import operator
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from agentplane.models import Agent, StepKind, Task, TaskStatus
from agentplane.runtime.providers.base import ToolSpec

WORD_RE = re.compile(r"\w+")


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


def _overlap(query: str, text: str) -> int:
    return len(set(WORD_RE.findall(query.lower())) & set(WORD_RE.findall(text.lower())))


async def memory_search(agent: Agent, task: Task, args: dict[str, Any]) -> ToolResult:
    """Recall this agent's earlier completed runs whose query or output shares words."""
    query = str(args.get("query", ""))
    earlier = (
        await Task.filter(agent_id=agent.id, status=TaskStatus.COMPLETED, id__lt=task.id)
        .order_by("-id")
        .limit(50)
    )
    scored = [(_overlap(query, f"{t.query} {t.output or ''}"), t) for t in earlier]
    hits = [
        {"taskId": t.id, "query": t.query, "output": t.output, "score": score}
        for score, t in sorted(scored, key=lambda s: -s[0])
        if score > 0
    ][:3]
    summary = "; ".join(f"{h['query']} -> {h['output']}" for h in hits) or "no memories"
    return ToolResult(StepKind.MEMORY_HIT, summary, hits)


async def retrieve(agent: Agent, task: Task, args: dict[str, Any]) -> ToolResult:
    """Keyword retrieval over the documents configured on the agent (`config.documents`)."""
    query = str(args.get("query", ""))
    documents = agent.config.get("documents", []) if isinstance(agent.config, dict) else []
    scored = [
        (_overlap(query, str(doc.get("text", ""))), doc)
        for doc in documents
        if isinstance(doc, dict)
    ]
    hits = [
        {"id": doc.get("id"), "title": doc.get("title"), "text": doc.get("text"), "score": score}
        for score, doc in sorted(scored, key=lambda s: -s[0])
        if score > 0
    ][:3]
    summary = "\n".join(str(h["text"]) for h in hits) or "no documents matched"
    return ToolResult(StepKind.RETRIEVAL_HIT, summary, hits)


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
        ToolSpec("memory_search", "Recall this agent's earlier runs", _QUERY_ARG),
        memory_search,
    ),
    "retrieve": (
        ToolSpec("retrieve", "Search the agent's configured documents", _QUERY_ARG),
        retrieve,
    ),
}
