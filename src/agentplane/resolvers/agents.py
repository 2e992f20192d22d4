from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from agentplane.core.errors import Conflict, NotFound, ValidationFailed
from agentplane.core.ids import MAX_LEN as MAX_ID_LEN
from agentplane.models import Agent, AgentState
from agentplane.resolvers.audit import audited
from agentplane.resolvers.auth import Actor
from agentplane.resolvers.pagination import OffsetPage, Page, offset_paginate, paginate
from agentplane.resolvers.permissions import Perm, check_tenant, is_platform, require
from agentplane.resolvers.tenants import resolve_tenant_name
from agentplane.runtime import catalog
from agentplane.runtime.approvals import check_config as check_approvals
from agentplane.runtime.tools import TOOLS, unknown_tools

MAX_STEPS_LIMIT = 50
MAX_TIMEOUT_S = 24 * 3600
MAX_NAME = 200


def _check_name(name: str) -> None:
    if not name.strip() or len(name) > MAX_NAME:
        raise ValidationFailed(f"`name` must be 1-{MAX_NAME} characters", field="name")
    if name.startswith("agt_"):
        # Agents are addressed by ID or by name: a name must never read as an ID.
        raise ValidationFailed("`name` must not start with 'agt_'", field="name")


async def _check_tools(tenant_id: str, tools: list[str]) -> None:
    unknown = await unknown_tools(tenant_id, tools)
    if unknown:
        raise ValidationFailed(
            f"Unknown tools {unknown}: name built-in tools ({sorted(TOOLS)}) or tools "
            "registered in the tenant (the `tools` query)",
            field="tools",
        )


def _validate(model: str, tools: list[str], config: dict[str, Any], max_steps: int) -> None:
    if catalog.lookup(model) is None:
        raise ValidationFailed(f"Unknown model {model!r}; see the model catalog", field="model")
    if not (isinstance(tools, list) and all(isinstance(t, str) for t in tools)):
        raise ValidationFailed("`tools` must be a list of tool names", field="tools")
    if not 1 <= max_steps <= MAX_STEPS_LIMIT:
        raise ValidationFailed(f"`maxSteps` must be 1..{MAX_STEPS_LIMIT}", field="maxSteps")
    script = config.get("script")
    if script is not None and not (
        isinstance(script, list) and all(isinstance(turn, dict) for turn in script)
    ):
        raise ValidationFailed("`config.script` must be a list of objects", field="config")
    kbs = config.get("knowledgeBases")
    if kbs is not None and not (isinstance(kbs, list) and all(isinstance(k, str) for k in kbs)):
        raise ValidationFailed("`config.knowledgeBases` must be a list of IDs", field="config")
    for key in ("retrievalInPrompt", "retrievalTopK", "maxMemories"):
        value = config.get(key)
        if value is not None and not (type(value) is int and 0 <= value <= 10_000):
            raise ValidationFailed(f"`config.{key}` must be an integer 0..10000", field="config")
    check_approvals(config)


@audited("agent.create")
async def create_agent(
    actor: Actor | None,
    *,
    name: str,
    model: str,
    display_name: str = "",
    description: str = "",
    system_prompt: str = "",
    tools: list[str] | None = None,
    config: dict[str, Any] | None = None,
    max_steps: int = 8,
    timeout_s: int | None = None,
    tenant: str | None = None,
    state: AgentState = AgentState.ACTIVE,
    max_concurrent_tasks: int | None = None,
) -> Agent:
    actor = require(actor, Perm.AGENT_WRITE)
    _check_name(name)
    if len(display_name) > 200:
        raise ValidationFailed("`displayName` is at most 200 characters", field="displayName")
    tools, config = tools or [], config or {}
    if not isinstance(config, dict):
        raise ValidationFailed("`config` must be a JSON object", field="config")
    _validate(model, tools, config, max_steps)
    if max_concurrent_tasks is not None and max_concurrent_tasks < 1:
        raise ValidationFailed(
            "`maxConcurrentTasks` must be at least 1", field="maxConcurrentTasks"
        )
    if timeout_s is not None and not 1 <= timeout_s <= MAX_TIMEOUT_S:
        raise ValidationFailed(f"`timeoutS` must be 1..{MAX_TIMEOUT_S}", field="timeoutS")
    if state not in (AgentState.DRAFT, AgentState.ACTIVE, AgentState.PAUSED):
        raise ValidationFailed("A new agent is draft, active or paused", field="state")
    tenant_id = await resolve_tenant_name(actor, tenant)
    await _check_tools(tenant_id, tools)
    await _free_archived_name(tenant_id, name)
    try:
        return await Agent.create(
            tenant_id=tenant_id,
            name=name,
            display_name=display_name,
            description=description,
            model=model,
            system_prompt=system_prompt,
            tools=tools,
            config=config,
            max_steps=max_steps,
            max_concurrent_tasks=max_concurrent_tasks,
            timeout_s=timeout_s,
            state=state,
        )
    except IntegrityError:
        raise Conflict(f"An agent named {name!r} already exists", field="name") from None


async def _free_archived_name(tenant_id: str, name: str) -> None:
    """A deleted (archived) agent keeps its row for its tasks' history, but not its name:
    a new agent may take it, so a caller can delete and re-create an agent by name."""
    archived = await Agent.get_or_none(tenant_id=tenant_id, name=name, state=AgentState.ARCHIVED)
    if archived is not None:
        await Agent.filter(id=archived.id, state=AgentState.ARCHIVED).update(
            name=f"{name[:150]} (deleted {archived.id})"
        )


async def _copy_name(source: Agent) -> str:
    base = f"{source.name[: MAX_NAME - 12]}-copy"
    taken = set(
        await Agent.filter(tenant_id=source.tenant_id, name__startswith=base)
        .exclude(state=AgentState.ARCHIVED)
        .values_list("name", flat=True)
    )
    candidates = (base if i == 1 else f"{base}-{i}" for i in range(1, len(taken) + 2))
    return next(n for n in candidates if n not in taken)


async def get_agent(actor: Actor | None, agent_id: str) -> Agent:
    """An agent by ID; a deleted (archived) one answers like a missing one."""
    actor = require(actor, Perm.AGENT_READ)
    # An ID longer than any ID cannot exist (and the ORM refuses to compare it).
    agent = await Agent.get_or_none(id=agent_id) if len(agent_id) <= MAX_ID_LEN else None
    return visible_agent(actor, agent_id, agent)


def visible_agent(actor: Actor, agent_id: str, agent: Agent | None) -> Agent:
    """The agent read for `agent_id`, if the caller may see it (`get_agent`'s answer)."""
    if agent is None or agent.state == AgentState.ARCHIVED:
        raise NotFound(f"Agent {agent_id!r} not found")
    check_tenant(actor, agent.tenant_id, f"Agent {agent_id!r}")
    return agent


async def find_agent(actor: Actor | None, ref: str) -> Agent:
    """An agent by ID (`agt_…`) or by name within the caller's tenant.

    REST dialects that let callers choose an agent's identifier (Koda's `"atlas"`)
    address agents by name; platform-scoped callers, who belong to no tenant,
    must use IDs.
    """
    actor = require(actor, Perm.AGENT_READ)
    if ref.startswith("agt_"):
        return await get_agent(actor, ref)
    agent = None
    if actor.tenant_id is not None and len(ref) <= MAX_NAME:
        agent = (
            await Agent.filter(tenant_id=actor.tenant_id, name=ref)
            .exclude(state=AgentState.ARCHIVED)
            .first()
        )
    if agent is None and actor.tenant_id is None:
        raise NotFound(
            f"Agent {ref!r} not found: a platform-scoped caller (no tenant) names agents by "
            "their agt_… ID; names are per tenant"
        )
    if agent is None:
        raise NotFound(f"Agent {ref!r} not found")
    return agent


@audited("agent.update")
async def update_agent(actor: Actor | None, agent_id: str, **changes: Any) -> Agent:
    """Change an agent's settings; only the given fields change. Bumps nothing else:
    publishing is what makes a new version."""
    actor = require(actor, Perm.AGENT_WRITE)
    agent = await get_agent(actor, agent_id)
    allowed = {
        "name",
        "display_name",
        "description",
        "model",
        "system_prompt",
        "tools",
        "config",
        "max_steps",
    }
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationFailed(f"Cannot change {sorted(unknown)}", field=sorted(unknown)[0])
    changes = {k: v for k, v in changes.items() if v is not None}
    name = changes.get("name", agent.name)
    if "name" in changes:
        _check_name(name)
    if len(changes.get("display_name", "")) > 200:
        raise ValidationFailed("`displayName` is at most 200 characters", field="displayName")
    config = changes.get("config", agent.config)
    if not isinstance(config, dict):
        raise ValidationFailed("`config` must be a JSON object", field="config")
    _validate(
        changes.get("model", agent.model),
        changes.get("tools", agent.tools),
        config,
        changes.get("max_steps", agent.max_steps),
    )
    if "tools" in changes:
        await _check_tools(agent.tenant_id, changes["tools"])
    if not changes:
        return agent
    if name != agent.name:
        await _free_archived_name(agent.tenant_id, name)
    try:
        await Agent.filter(id=agent.id).update(updated_at=datetime.now(UTC), **changes)
    except IntegrityError:
        raise Conflict(f"An agent named {name!r} already exists", field="name") from None
    return await Agent.get(id=agent.id)


@audited("agent.delete")
async def delete_agent(actor: Actor | None, agent_id: str) -> Agent:
    """Soft delete: the agent is archived (its tasks and traces stay readable)."""
    actor = require(actor, Perm.AGENT_WRITE)
    agent = await get_agent(actor, agent_id)
    await (
        Agent.filter(id=agent.id)
        .exclude(state=AgentState.ARCHIVED)
        .update(state=AgentState.ARCHIVED, updated_at=datetime.now(UTC))
    )
    return await Agent.get(id=agent.id)


@audited("agent.clone")
async def clone_agent(
    actor: Actor | None,
    agent_id: str,
    *,
    name: str | None = None,
    display_name: str | None = None,
    description: str | None = None,
) -> Agent:
    """A new draft agent with the source's settings, in the source's tenant; unnamed, it
    takes the first free `<source>-copy[-n]`."""
    actor = require(actor, Perm.AGENT_WRITE)
    source = await get_agent(actor, agent_id)
    if name is None:
        name = await _copy_name(source)
    _check_name(name)
    await _free_archived_name(source.tenant_id, name)
    try:
        return await Agent.create(
            tenant_id=source.tenant_id,
            name=name,
            display_name=source.display_name if display_name is None else display_name[:200],
            description=source.description if description is None else description,
            model=source.model,
            system_prompt=source.system_prompt,
            tools=list(source.tools),
            config=dict(source.config),
            max_steps=source.max_steps,
            timeout_s=source.timeout_s,
            max_concurrent_tasks=source.max_concurrent_tasks,
            state=AgentState.DRAFT,
        )
    except IntegrityError:
        raise Conflict(f"An agent named {name!r} already exists", field="name") from None


@dataclass(frozen=True)
class Check:
    """One publish check: `error` checks block publishing, `warning` ones do not."""

    id: str
    passed: bool
    severity: str  # "error" | "warning"
    message: str


def _checks(agent: Agent, missing_tools: list[str]) -> list[Check]:
    def check(id_: str, passed: bool, severity: str, ok: str, bad: str) -> Check:
        return Check(id_, passed, severity, ok if passed else bad)

    info = catalog.lookup(agent.model)
    script = agent.config.get("script")
    return [
        check(
            "model",
            info is not None,
            "error",
            "Model is in the catalog",
            f"Unknown model {agent.model!r}",
        ),
        check(
            "pricing",
            info is not None and info.priced,
            "warning",
            "Model has a list price",
            "Model has no list price: its usage is unpriced",
        ),
        check(
            "tools",
            not missing_tools,
            "error",
            "Every tool exists",
            f"Unknown tools {missing_tools}",
        ),
        check(
            "max_steps",
            1 <= agent.max_steps <= MAX_STEPS_LIMIT,
            "error",
            "Step limit is within bounds",
            f"`maxSteps` must be 1..{MAX_STEPS_LIMIT}",
        ),
        check(
            "config",
            script is None
            or (isinstance(script, list) and all(isinstance(t, dict) for t in script)),
            "error",
            "Configuration is well formed",
            "`config.script` must be a list of objects",
        ),
        check(
            "system_prompt",
            bool(agent.system_prompt.strip()),
            "warning",
            "Has a system prompt",
            "No system prompt",
        ),
    ]


async def publish_checks(actor: Actor | None, agent_id: str) -> tuple[Agent, list[Check]]:
    actor = require(actor, Perm.AGENT_READ)
    agent = await get_agent(actor, agent_id)
    return agent, _checks(agent, await unknown_tools(agent.tenant_id, agent.tools))


@audited("agent.publish")
async def publish_agent(actor: Actor | None, agent_id: str) -> Agent:
    """Publish the agent's current settings as a new version (refused if a check fails).

    A draft becomes active on publish; a paused agent stays paused."""
    actor = require(actor, Perm.AGENT_WRITE)
    agent = await get_agent(actor, agent_id)
    checks = _checks(agent, await unknown_tools(agent.tenant_id, agent.tools))
    failed = [c for c in checks if not c.passed and c.severity == "error"]
    if failed:
        raise ValidationFailed(
            "Publish checks failed: " + "; ".join(c.message for c in failed), field=failed[0].id
        )
    now = datetime.now(UTC)
    async with in_transaction():
        await Agent.filter(id=agent.id).update(
            version=F("version") + 1, published_at=now, updated_at=now
        )
        await Agent.filter(id=agent.id, state=AgentState.DRAFT).update(state=AgentState.ACTIVE)
    return await Agent.get(id=agent.id)


@audited("agent.set_state")
async def set_agent_state(actor: Actor | None, agent_id: str, to: AgentState) -> Agent:
    """Activate or pause: a conditional update, so concurrent callers cannot interleave."""
    actor = require(actor, Perm.AGENT_WRITE)
    if to not in (AgentState.ACTIVE, AgentState.PAUSED):
        raise ValidationFailed("An agent can be activated or paused", field="state")
    agent = await get_agent(actor, agent_id)
    if to == AgentState.ACTIVE:
        checks = _checks(agent, await unknown_tools(agent.tenant_id, agent.tools))
        failed = [c for c in checks if not c.passed and c.severity == "error"]
        if failed:
            raise ValidationFailed(
                "Cannot activate: " + "; ".join(c.message for c in failed), field=failed[0].id
            )
    await (
        Agent.filter(id=agent.id)
        .exclude(state=AgentState.ARCHIVED)
        .update(state=to, updated_at=datetime.now(UTC))
    )
    return await Agent.get(id=agent.id)


async def list_agents_offset(
    actor: Actor | None, limit: int, offset: int, state: AgentState | None = None
) -> OffsetPage[Agent]:
    """Agents (not deleted) oldest first, by limit/offset with the total count."""
    actor = require(actor, Perm.AGENT_READ)
    qs = Agent.all() if is_platform(actor) else Agent.filter(tenant_id=actor.tenant_id)
    qs = qs.exclude(state=AgentState.ARCHIVED)
    if state is not None:
        qs = qs.filter(state=state)
    return await offset_paginate(qs, limit, offset)


async def list_agents(actor: Actor | None, first: int | None, after: str | None) -> Page[Agent]:
    filters, excluded = agent_filters(actor)
    return await paginate(Agent.filter(**filters).exclude(**excluded), first, after)


def agent_filters(actor: Actor | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Who may list agents, and which (filters, exclusions): `list_agents`' (and the
    pages the database renders, `json_pages`)."""
    actor = require(actor, Perm.AGENT_READ)
    filters = {} if is_platform(actor) else {"tenant_id": actor.tenant_id}
    return filters, {"state": AgentState.ARCHIVED}


async def load_agents(actor: Actor | None, ids: list[str]) -> list[Agent | None]:
    """Batch lookup for DataLoaders: foreign or missing IDs come back as None."""
    actor = require(actor, Perm.AGENT_READ)
    qs = Agent.filter(id__in=[i for i in ids if len(i) <= MAX_ID_LEN])
    if not is_platform(actor):
        qs = qs.filter(tenant_id=actor.tenant_id)
    by_id = {a.id: a for a in await qs}
    return [by_id.get(i) for i in ids]


def list_models(actor: Actor | None, enabled_only: bool = False) -> list[catalog.ModelInfo]:
    """The model catalog (with list prices), for authenticated callers; `enabled_only`:
    only the models a provider here serves."""
    require(actor, Perm.AGENT_READ)
    models = catalog.CATALOG.values()
    return [m for m in models if catalog.servable(m)] if enabled_only else list(models)
