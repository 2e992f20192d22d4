"""The tools an agent may call: the built-ins, and `resolve_tools`, which adds the
tenant's registered HTTP and MCP tools (`runtime/tool_sources.py` calls those)."""

import ast
import asyncio
import operator
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import jsonschema

from agentplane.models import Agent, KnowledgeBase, StepKind, Task, Tool, ToolSource
from agentplane.retrieval import knowledge, memory
from agentplane.retrieval.fusion import Hit, weights_of
from agentplane.runtime import tool_sources
from agentplane.runtime.providers.base import ToolSpec


@dataclass
class ToolResult:
    kind: StepKind
    output: str
    hits: list[dict[str, Any]] | None = None
    error_code: str | None = None  # the call failed (timeout, HTTP or MCP error, ...)


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

# The risk label of each built-in tool (registered tools carry their own).
BUILTIN_RISK = {"remember": "medium"}
DEFAULT_TIMEOUT_S = 30.0


@dataclass
class ResolvedTool:
    """One tool an agent may call, whatever its source, ready to run.

    `execute` runs a call with arguments already checked by `validate`, under the tool's
    timeout; what the tool or its server did wrong comes back as a result with `error_code`,
    never as an exception.
    """

    name: str
    source: str  # "builtin" | "http" | "mcp"
    description: str
    input_schema: dict[str, Any]
    requires_approval: bool
    risk: str
    server: str | None  # HTTP: the origin called; MCP: the server's name
    timeout_s: float
    run: Callable[[Agent, Task, dict[str, Any]], Awaitable[ToolResult]]
    server_id: str | None = None

    def spec(self) -> ToolSpec:
        return ToolSpec(self.name, self.description, self.input_schema)

    def validate(self, arguments: dict[str, Any]) -> list[str]:
        """What is wrong with `arguments` against the tool's JSON Schema (empty: valid)."""
        try:
            cls = jsonschema.validators.validator_for(self.input_schema)
            cls.check_schema(self.input_schema)
        except jsonschema.SchemaError as exc:
            return [f"the tool's input schema is invalid: {exc.message}"]
        errors = sorted(cls(self.input_schema).iter_errors(arguments), key=lambda e: e.path)
        return [
            f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
            for e in errors[:5]
        ]

    async def execute(self, agent: Agent, task: Task, arguments: dict[str, Any]) -> ToolResult:
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self.run(agent, task, arguments)
        except TimeoutError:
            return ToolResult(
                StepKind.TOOL_CALL,
                f"error: tool {self.name!r} did not finish within {self.timeout_s:g}s",
                error_code="TOOL_TIMEOUT",
            )


def resolve_builtin(name: str) -> ResolvedTool:
    spec, fn = TOOLS[name]
    return ResolvedTool(
        name=name,
        source=ToolSource.BUILTIN.value,
        description=spec.description,
        input_schema=spec.parameters,
        requires_approval=False,
        risk=BUILTIN_RISK.get(name, "low"),
        server=None,
        timeout_s=DEFAULT_TIMEOUT_S,
        run=fn,
    )


def _as_result(result: tool_sources.SourceResult) -> ToolResult:
    return ToolResult(StepKind.TOOL_CALL, result.output, error_code=result.error_code)


def _registered(row: Tool) -> ResolvedTool:
    server = row.server if row.source == ToolSource.MCP else None

    async def run(agent: Agent, task: Task, arguments: dict[str, Any]) -> ToolResult:
        if server is not None:
            return _as_result(await tool_sources.call_mcp(row, server, arguments))
        return _as_result(await tool_sources.call_http(row, arguments))

    return ResolvedTool(
        name=row.name,
        source=row.source.value,
        description=row.description,
        input_schema=row.input_schema or {"type": "object"},
        requires_approval=row.requires_approval,
        risk=row.risk,
        server=server.name if server is not None else tool_sources.origin(row.url or ""),
        # The MCP client keeps its own deadline inside this one; ours is the backstop.
        timeout_s=(server.timeout_s if server is not None else row.timeout_s) + 5,
        run=run,
        server_id=server.id if server is not None else None,
    )


async def resolve_tools(agent: Agent) -> dict[str, ResolvedTool]:
    """The tools `agent` may call now, by name, in the agent's order: its built-ins and
    its tenant's enabled registered tools (never another tenant's). A name the agent lists
    that resolves to nothing (deleted, disabled) is left out; the loop refuses calls to it."""
    wanted = [n for n in agent.tools if isinstance(n, str)]
    registered = [n for n in wanted if n not in TOOLS]
    rows: dict[str, Tool] = {}
    if registered:
        found = await Tool.filter(
            tenant_id=agent.tenant_id, name__in=registered, enabled=True
        ).select_related("server")
        rows = {row.name: row for row in found}
    resolved: dict[str, ResolvedTool] = {}
    for name in wanted:
        if name in TOOLS:
            resolved[name] = resolve_builtin(name)
        elif name in rows:
            resolved[name] = _registered(rows[name])
    return resolved


async def unknown_tools(tenant_id: str, names: list[str]) -> list[str]:
    """The names that are neither a built-in nor a registered tool of the tenant."""
    registered = [n for n in names if n not in TOOLS]
    if not registered:
        return []
    found = set(
        await Tool.filter(tenant_id=tenant_id, name__in=registered).values_list("name", flat=True)
    )
    return sorted({n for n in registered if n not in found})
