from typing import Any

from tortoise.exceptions import IntegrityError

from agentplane.auth import Actor
from agentplane.errors import Conflict, NotFound, ValidationFailed
from agentplane.models import Agent, AgentState
from agentplane.resolvers.audit import audited
from agentplane.resolvers.pagination import Page, paginate
from agentplane.resolvers.permissions import Perm, check_tenant, is_platform, require
from agentplane.resolvers.tenants import resolve_tenant_name
from agentplane.runtime import catalog
from agentplane.runtime.tools import TOOLS

MAX_STEPS_LIMIT = 50
MAX_TIMEOUT_S = 24 * 3600


def _validate(model: str, tools: list[str], config: dict[str, Any], max_steps: int) -> None:
    if catalog.lookup(model) is None:
        raise ValidationFailed(
            f"Unknown model {model!r}; see the `models` query for the catalog", field="model"
        )
    unknown = sorted(set(tools) - set(TOOLS))
    if unknown:
        raise ValidationFailed(f"Unknown tools {unknown}; one of {sorted(TOOLS)}", field="tools")
    if not 1 <= max_steps <= MAX_STEPS_LIMIT:
        raise ValidationFailed(f"`maxSteps` must be 1..{MAX_STEPS_LIMIT}", field="maxSteps")
    script = config.get("script")
    if script is not None and not (
        isinstance(script, list) and all(isinstance(turn, dict) for turn in script)
    ):
        raise ValidationFailed("`config.script` must be a list of objects", field="config")


@audited("agent.create")
async def create_agent(
    actor: Actor | None,
    *,
    name: str,
    model: str,
    description: str = "",
    system_prompt: str = "",
    tools: list[str] | None = None,
    config: dict[str, Any] | None = None,
    max_steps: int = 8,
    timeout_s: int | None = None,
    tenant: str | None = None,
    max_concurrent_tasks: int | None = None,
) -> Agent:
    actor = require(actor, Perm.AGENT_WRITE)
    if not name.strip() or len(name) > 200:
        raise ValidationFailed("`name` must be 1-200 characters", field="name")
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
    tenant_id = await resolve_tenant_name(actor, tenant)
    try:
        return await Agent.create(
            tenant_id=tenant_id,
            name=name,
            description=description,
            model=model,
            system_prompt=system_prompt,
            tools=tools,
            config=config,
            max_steps=max_steps,
            max_concurrent_tasks=max_concurrent_tasks,
            timeout_s=timeout_s,
        )
    except IntegrityError:
        raise Conflict(f"An agent named {name!r} already exists", field="name") from None


async def get_agent(actor: Actor | None, agent_id: str) -> Agent:
    actor = require(actor, Perm.AGENT_READ)
    agent = await Agent.get_or_none(id=agent_id)
    if agent is None:
        raise NotFound(f"Agent {agent_id!r} not found")
    check_tenant(actor, agent.tenant_id, f"Agent {agent_id!r}")
    return agent


async def list_agents(actor: Actor | None, first: int | None, after: str | None) -> Page[Agent]:
    actor = require(actor, Perm.AGENT_READ)
    qs = Agent.all() if is_platform(actor) else Agent.filter(tenant_id=actor.tenant_id)
    return await paginate(qs.exclude(state=AgentState.ARCHIVED), first, after)


async def load_agents(actor: Actor | None, ids: list[str]) -> list[Agent | None]:
    """Batch lookup for DataLoaders: foreign or missing IDs come back as None."""
    actor = require(actor, Perm.AGENT_READ)
    qs = Agent.filter(id__in=ids)
    if not is_platform(actor):
        qs = qs.filter(tenant_id=actor.tenant_id)
    by_id = {a.id: a for a in await qs}
    return [by_id.get(i) for i in ids]
