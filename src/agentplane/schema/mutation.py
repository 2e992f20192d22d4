from datetime import datetime

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from agentplane.models import AgentState
from agentplane.resolvers import agents, tasks, tenants, tokens
from agentplane.schema.approvals import ApprovalMutation
from agentplane.schema.context import Context
from agentplane.schema.fleet import FleetMutation
from agentplane.schema.iam import IamMutation
from agentplane.schema.identity import IdentityMutation
from agentplane.schema.knowledge import KnowledgeMutation
from agentplane.schema.tools import ToolsMutation
from agentplane.schema.types import AccessToken, Agent, Task, Tenant


@strawberry.input
class CreateTenantInput:
    name: str
    display_name: str = ""
    email: str = ""
    team: str = ""


@strawberry.type
class CreateTenantPayload:
    tenant: Tenant


@strawberry.input
class CreateAccessTokenInput:
    name: str
    role: str = strawberry.field(description='A role\'s name, e.g. "operator"')
    tenant: str | None = strawberry.field(
        default=None, description="Tenant name; defaults to the caller's tenant"
    )
    expires_at: datetime | None = None


@strawberry.type
class CreateAccessTokenPayload:
    token: AccessToken
    plain_text_token: str = strawberry.field(description="Shown once; only a hash is stored")


@strawberry.input
class CreateAgentInput:
    name: str
    display_name: str = ""
    model: str = "scripted/echo"
    description: str = ""
    system_prompt: str = ""
    tools: list[str] | None = None
    config: JSON | None = strawberry.field(
        default=None, description="Provider settings, e.g. the scripted model's `script`"
    )
    max_steps: int = 8
    timeout_s: int | None = strawberry.field(
        default=None, description="Per-run timeout in seconds; default AGENTPLANE_TASK_TIMEOUT_S"
    )
    tenant: str | None = strawberry.field(
        default=None, description="Tenant name; required for platform-scoped callers"
    )
    max_concurrent_tasks: int | None = strawberry.field(
        default=None, description="At most this many of its tasks run at once"
    )


@strawberry.type
class CreateAgentPayload:
    agent: Agent


@strawberry.input
class UpdateAgentInput:
    id: strawberry.ID
    name: str | None = None
    display_name: str | None = None
    model: str | None = None
    description: str | None = None
    system_prompt: str | None = None
    tools: list[str] | None = None
    config: JSON | None = None
    max_steps: int | None = None


@strawberry.input
class AgentIdInput:
    id: strawberry.ID


@strawberry.input
class CloneAgentInput:
    id: strawberry.ID
    name: str
    display_name: str | None = None


@strawberry.type
class AgentPayload:
    agent: Agent


@strawberry.input
class SubmitTaskInput:
    agent_id: strawberry.ID
    query: str
    metadata: JSON | None = None


@strawberry.type
class SubmitTaskPayload:
    task: Task


async def submit_task_payload(
    context: Context, agent_id: str, query: str, metadata: object
) -> SubmitTaskPayload:
    """`submitTask`'s answer, also given by its compiled plan (schema/compiled.py)."""
    task = await tasks.submit_task(
        context.actor,
        agent_id=agent_id,
        query=query,
        metadata=metadata,  # type: ignore[arg-type]  # checked in the resolver
    )
    return SubmitTaskPayload(task=task)  # type: ignore[arg-type]


@strawberry.input(description="Names a task for cancelTask, pauseTask, resumeTask, retryTask.")
class TaskControlInput:
    id: strawberry.ID
    reason: str | None = strawberry.field(
        default=None, description="Why (at most 500 characters); recorded in the audit entry"
    )


@strawberry.type
class TaskControlPayload:
    task: Task


@strawberry.type
class Mutation(
    ApprovalMutation, KnowledgeMutation, ToolsMutation, IdentityMutation, IamMutation, FleetMutation
):
    @strawberry.mutation(description="Create a tenant (platform admins only).")
    async def create_tenant(
        self, info: Info[Context, None], input: CreateTenantInput
    ) -> CreateTenantPayload:
        tenant = await tenants.create_tenant(
            info.context.actor,
            name=input.name,
            display_name=input.display_name,
            email=input.email,
            team=input.team,
        )
        return CreateTenantPayload(tenant=tenant)  # type: ignore[arg-type]

    @strawberry.mutation
    async def create_access_token(
        self, info: Info[Context, None], input: CreateAccessTokenInput
    ) -> CreateAccessTokenPayload:
        token, plaintext = await tokens.create_access_token(
            info.context.actor,
            name=input.name,
            tenant=input.tenant,
            role=input.role,
            expires_at=input.expires_at,
        )
        return CreateAccessTokenPayload(token=token, plain_text_token=plaintext)  # type: ignore[arg-type]

    @strawberry.mutation
    async def create_agent(
        self, info: Info[Context, None], input: CreateAgentInput
    ) -> CreateAgentPayload:
        agent = await agents.create_agent(
            info.context.actor,
            name=input.name,
            display_name=input.display_name,
            model=input.model,
            description=input.description,
            system_prompt=input.system_prompt,
            tools=input.tools,
            config=input.config,  # type: ignore[arg-type]  # checked in the resolver
            max_steps=input.max_steps,
            timeout_s=input.timeout_s,
            tenant=input.tenant,
            max_concurrent_tasks=input.max_concurrent_tasks,
        )
        return CreateAgentPayload(agent=agent)  # type: ignore[arg-type]

    @strawberry.mutation(description="Change an agent's settings; omitted fields stay as they are.")
    async def update_agent(
        self, info: Info[Context, None], input: UpdateAgentInput
    ) -> AgentPayload:
        changes = {
            "name": input.name,
            "display_name": input.display_name,
            "model": input.model,
            "description": input.description,
            "system_prompt": input.system_prompt,
            "tools": input.tools,
            "config": input.config,
            "max_steps": input.max_steps,
        }
        agent = await agents.update_agent(info.context.actor, input.id, **changes)
        return AgentPayload(agent=agent)  # type: ignore[arg-type]

    @strawberry.mutation(description="Soft-delete (archive) an agent; its tasks stay readable.")
    async def delete_agent(self, info: Info[Context, None], input: AgentIdInput) -> AgentPayload:
        return AgentPayload(agent=await agents.delete_agent(info.context.actor, input.id))  # type: ignore[arg-type]

    @strawberry.mutation(description="Copy an agent's settings into a new draft agent.")
    async def clone_agent(self, info: Info[Context, None], input: CloneAgentInput) -> AgentPayload:
        agent = await agents.clone_agent(
            info.context.actor, input.id, name=input.name, display_name=input.display_name
        )
        return AgentPayload(agent=agent)  # type: ignore[arg-type]

    @strawberry.mutation(description="Publish the current settings as a new version.")
    async def publish_agent(self, info: Info[Context, None], input: AgentIdInput) -> AgentPayload:
        return AgentPayload(agent=await agents.publish_agent(info.context.actor, input.id))  # type: ignore[arg-type]

    @strawberry.mutation
    async def activate_agent(self, info: Info[Context, None], input: AgentIdInput) -> AgentPayload:
        agent = await agents.set_agent_state(info.context.actor, input.id, AgentState.ACTIVE)
        return AgentPayload(agent=agent)  # type: ignore[arg-type]

    @strawberry.mutation(description="Pause an agent: it takes no new tasks.")
    async def pause_agent(self, info: Info[Context, None], input: AgentIdInput) -> AgentPayload:
        agent = await agents.set_agent_state(info.context.actor, input.id, AgentState.PAUSED)
        return AgentPayload(agent=agent)  # type: ignore[arg-type]

    @strawberry.mutation
    async def submit_task(
        self, info: Info[Context, None], input: SubmitTaskInput
    ) -> SubmitTaskPayload:
        return await submit_task_payload(info.context, input.agent_id, input.query, input.metadata)

    @strawberry.mutation(description="Cancel a task; a running model call stops within a second.")
    async def cancel_task(
        self, info: Info[Context, None], input: TaskControlInput
    ) -> TaskControlPayload:
        task = await tasks.cancel_task(info.context.actor, input.id, reason=input.reason)
        return TaskControlPayload(task=task)  # type: ignore[arg-type]

    @strawberry.mutation(description="Pause a task between steps; its state stays in the trace.")
    async def pause_task(
        self, info: Info[Context, None], input: TaskControlInput
    ) -> TaskControlPayload:
        task = await tasks.pause_task(info.context.actor, input.id, reason=input.reason)
        return TaskControlPayload(task=task)  # type: ignore[arg-type]

    @strawberry.mutation(description="Continue a paused task from where it stopped.")
    async def resume_task(
        self, info: Info[Context, None], input: TaskControlInput
    ) -> TaskControlPayload:
        task = await tasks.resume_task(info.context.actor, input.id, reason=input.reason)
        return TaskControlPayload(task=task)  # type: ignore[arg-type]

    @strawberry.mutation(description="Run a failed or cancelled task again, as a new attempt.")
    async def retry_task(
        self, info: Info[Context, None], input: TaskControlInput
    ) -> TaskControlPayload:
        task = await tasks.retry_task(info.context.actor, input.id, reason=input.reason)
        return TaskControlPayload(task=task)  # type: ignore[arg-type]
