"""GraphQL for identity, tenancy lifecycle, audit, budgets, usage and provider keys.

Merged into the root types by inheritance (`Query(IdentityQuery, …)`), so the root
modules stay untouched but for one base class each.
"""

import contextlib
from collections.abc import AsyncGenerator
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from agentplane import models
from agentplane.resolvers import (
    accounts,
    audit,
    budgets,
    provider_keys,
    roles,
    tenants,
    tokens,
)
from agentplane.resolvers.budgets import BudgetView
from agentplane.resolvers.pagination import Page
from agentplane.schema.context import Context
from agentplane.schema.live import LiveFrames
from agentplane.schema.types import AccessToken, Connection, Node, Tenant

strawberry.enum(models.BudgetScope, name="BudgetScope")


@strawberry.enum
class AlertState(Enum):
    OK = "ok"
    WARNING = "warning"
    EXCEEDED = "exceeded"


@strawberry.enum
class CostStatus(Enum):
    PRICED = "priced"
    UNPRICED = "unpriced"


def _usd(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


@strawberry.type
class RoleDefinition:
    name: str
    description: str
    permissions: list[str]
    scope: str = strawberry.field(description='"platform", "tenant" or "any"')
    builtin: bool


@strawberry.type
class User:
    id: strawberry.ID
    email: str
    display_name: str
    created_at: datetime
    last_login_at: datetime | None
    disabled: bool = strawberry.field(description="Revoked: it can no longer sign in")
    not_after: datetime | None = strawberry.field(description="The account expires then")

    @strawberry.field(description="The roles it holds that you may see.")
    async def role_assignments(
        self, root: strawberry.Parent[models.User], info: Info[Context, None]
    ) -> list["RoleAssignment"]:
        return await info.context.user_roles_loader.load(root.id)  # type: ignore[return-value]


@strawberry.type
class RoleAssignment:
    id: strawberry.ID
    role: str

    @strawberry.field
    def user_id(self, root: strawberry.Parent[models.RoleAssignment]) -> strawberry.ID:
        return strawberry.ID(root.user_id)

    @strawberry.field
    async def tenant(
        self, root: strawberry.Parent[models.RoleAssignment], info: Info[Context, None]
    ) -> Tenant | None:
        if root.tenant_id is None:
            return None
        return await info.context.tenant_loader.load(root.tenant_id)  # type: ignore[return-value]


@strawberry.type
class Session:
    id: strawberry.ID
    method: str
    user_agent: str
    ip: str
    created_at: datetime
    last_seen_at: datetime | None
    expires_at: datetime
    revoked_at: datetime | None

    @strawberry.field(description="True for the session making this request.")
    def current(self, root: strawberry.Parent[models.Session], info: Info[Context, None]) -> bool:
        actor = info.context.actor
        return actor is not None and actor.session_id == root.id


@strawberry.type
class AuditEvent(Node):
    id: strawberry.ID
    created_at: datetime
    actor: str
    actor_kind: str
    role: str | None
    tenant_id: strawberry.ID | None
    action: str
    resource: str
    outcome: str
    request_id: str | None
    task_id: strawberry.ID | None
    details: JSON

    @classmethod
    def is_type_of(cls, obj: Any, info: Info) -> bool:
        return isinstance(obj, models.AuditEvent | AuditEvent)


@strawberry.type
class Budget:
    scope: models.BudgetScope
    account: str | None
    agent_id: strawberry.ID | None
    window: str = strawberry.field(
        description='The calendar month (UTC) spend counts in, "YYYY-MM"'
    )

    @strawberry.field
    def id(self, root: strawberry.Parent[BudgetView]) -> strawberry.ID | None:
        return strawberry.ID(root.id) if root.id else None

    @strawberry.field(description="Null when no ceiling is set at this scope.")
    def monthly_limit_usd(self, root: strawberry.Parent[BudgetView]) -> float | None:
        return _usd(root.monthly_limit_usd)

    @strawberry.field(description="The window's priced usage at this scope.")
    def current_spend_usd(self, root: strawberry.Parent[BudgetView]) -> float:
        return float(root.current_spend_usd)

    @strawberry.field(description="Held for provider calls in flight.")
    def reserved_usd(self, root: strawberry.Parent[BudgetView]) -> float:
        return float(root.reserved_usd)

    @strawberry.field
    def alert_state(self, root: strawberry.Parent[BudgetView]) -> AlertState:
        return AlertState(root.alert_state)

    @strawberry.field
    async def tenant(
        self, root: strawberry.Parent[BudgetView], info: Info[Context, None]
    ) -> Tenant | None:
        if root.tenant_id is None:
            return None
        return await info.context.tenant_loader.load(root.tenant_id)  # type: ignore[return-value]


@strawberry.type
class BudgetAlert:
    budget_id: strawberry.ID
    scope: models.BudgetScope
    tenant_id: strawberry.ID | None
    account: str | None
    agent_id: strawberry.ID | None
    window: str
    alert_state: AlertState
    monthly_limit_usd: float
    current_spend_usd: float
    at: datetime


@strawberry.type
class UsageRecord(Node):
    id: strawberry.ID
    model: str
    input_tokens: int
    output_tokens: int
    pricing_version: str

    @strawberry.field
    def window(self, root: strawberry.Parent[models.UsageRecord]) -> str:
        return root.period

    @strawberry.field
    def recorded_at(self, root: strawberry.Parent[models.UsageRecord]) -> datetime:
        return root.created_at

    @strawberry.field(description="Null when the model has no price: unknown, not $0.")
    def cost_usd(self, root: strawberry.Parent[models.UsageRecord]) -> float | None:
        return float(root.cost_usd) if root.priced else None

    @strawberry.field
    def cost_status(self, root: strawberry.Parent[models.UsageRecord]) -> CostStatus:
        return CostStatus.PRICED if root.priced else CostStatus.UNPRICED

    @strawberry.field
    def task_id(self, root: strawberry.Parent[models.UsageRecord]) -> strawberry.ID:
        return strawberry.ID(root.task_id)

    @strawberry.field
    def agent_id(self, root: strawberry.Parent[models.UsageRecord]) -> strawberry.ID:
        return strawberry.ID(root.agent_id)

    @strawberry.field
    async def tenant(
        self, root: strawberry.Parent[models.UsageRecord], info: Info[Context, None]
    ) -> Tenant | None:
        return await info.context.tenant_loader.load(root.tenant_id)  # type: ignore[return-value]

    @classmethod
    def is_type_of(cls, obj: Any, info: Info) -> bool:
        return isinstance(obj, models.UsageRecord | UsageRecord)


@strawberry.type
class ProviderKeyStatus:
    provider: str
    configured: bool
    updated_at: datetime | None


# ---------------------------------------------------------------- inputs and payloads


@strawberry.input
class TenantNameInput:
    name: str


@strawberry.input
class UpdateTenantInput:
    name: str
    display_name: str | None = None
    email: str | None = None
    team: str | None = None


@strawberry.type
class TenantPayload:
    tenant: Tenant


@strawberry.input
class IdInput:
    id: strawberry.ID


@strawberry.type
class AccessTokenPayload:
    token: AccessToken


@strawberry.input
class SetBudgetInput:
    scope: models.BudgetScope
    monthly_limit_usd: float
    tenant: str | None = strawberry.field(default=None, description="Tenant name")
    account: str | None = strawberry.field(default=None, description="A user or token ID")
    agent_id: strawberry.ID | None = None


@strawberry.input
class RemoveBudgetInput:
    scope: models.BudgetScope
    tenant: str | None = None
    account: str | None = None
    agent_id: strawberry.ID | None = None


@strawberry.type
class BudgetPayload:
    budget: Budget


@strawberry.input
class AssignRoleInput:
    user_id: strawberry.ID
    role: str
    tenant: str | None = strawberry.field(
        default=None, description="Tenant name; omit for platform scope (platform admins only)"
    )


@strawberry.input
class CreateUserInput:
    email: str
    role: str
    password: str | None = strawberry.field(
        default=None, description="Initial password; omit for an OIDC-only account"
    )
    tenant: str | None = strawberry.field(
        default=None,
        description="Tenant name; defaults to yours (platform admins: omit for platform scope)",
    )
    display_name: str = ""


@strawberry.type
class UserPayload:
    user: User


@strawberry.type
class RoleAssignmentPayload:
    assignment: RoleAssignment


@strawberry.type
class SessionPayload:
    session: Session


@strawberry.input
class ChangePasswordInput:
    current_password: str
    new_password: str


@strawberry.type
class OkPayload:
    ok: bool


@strawberry.input
class SetProviderKeyInput:
    provider: str
    api_key: str = strawberry.field(description="Stored encrypted; never returned")
    tenant: str | None = None


@strawberry.input
class DeleteProviderKeyInput:
    provider: str
    tenant: str | None = None


@strawberry.type
class ProviderKeyPayload:
    provider_key: ProviderKeyStatus


def _page(views: Page[Any]) -> Connection[Any]:
    return Connection.of(views)


# ---------------------------------------------------------------- root fields


@strawberry.type
class IdentityQuery:
    @strawberry.field(description="The role definitions (roles are data).")
    async def roles(self, info: Info[Context, None]) -> list[RoleDefinition]:
        return await roles.list_roles(info.context.actor)  # type: ignore[return-value]

    @strawberry.field(description="People: every user, or those holding a role in your tenant.")
    async def users(self, info: Info[Context, None]) -> list[User]:
        return await roles.list_users(info.context.actor)  # type: ignore[return-value]

    @strawberry.field
    async def role_assignments(
        self, info: Info[Context, None], user_id: strawberry.ID | None = None
    ) -> list[RoleAssignment]:
        rows = await roles.list_assignments(info.context.actor, user_id)
        return rows  # type: ignore[return-value]

    @strawberry.field(description="The audit trail, newest first (keyset cursor pagination).")
    async def audit_events(
        self,
        info: Info[Context, None],
        first: int | None = None,
        after: str | None = None,
        tenant: str | None = None,
        action: str | None = None,
    ) -> Connection[AuditEvent]:
        page = await audit.list_audit_events(info.context.actor, first, after, tenant, action)
        return Connection.of(page)

    @strawberry.field(description="The budget at one scope (limit null when none is set).")
    async def budget(
        self,
        info: Info[Context, None],
        scope: models.BudgetScope,
        tenant: str | None = None,
        account: str | None = None,
        agent_id: strawberry.ID | None = None,
    ) -> Budget:
        view = await budgets.get_budget(info.context.actor, scope, tenant, account, agent_id)
        return view  # type: ignore[return-value]

    @strawberry.field(description="Every budget you may see.")
    async def budgets(
        self, info: Info[Context, None], first: int | None = None, after: str | None = None
    ) -> Connection[Budget]:
        page = await budgets.list_budgets(info.context.actor, first, after)
        views = Page([budgets.view_of(row) for row in page.items], page.has_next, page.has_previous)
        return _page(views)

    @strawberry.field(
        description="Usage records (tokens and cost per provider call), newest first."
    )
    async def token_usage(
        self,
        info: Info[Context, None],
        first: int | None = None,
        after: str | None = None,
        tenant: str | None = None,
        model: str | None = None,
    ) -> Connection[UsageRecord]:
        page = await budgets.list_usage(info.context.actor, first, after, tenant, model)
        return Connection.of(page)

    @strawberry.field(description="Your signed-in sessions (platform admins: any user's).")
    async def sessions(
        self, info: Info[Context, None], user_id: strawberry.ID | None = None
    ) -> list[Session]:
        return await accounts.list_sessions(info.context.actor, user_id)  # type: ignore[return-value]

    @strawberry.field(description="Which provider keys are configured (never their value).")
    async def provider_keys(
        self, info: Info[Context, None], tenant: str | None = None
    ) -> list[ProviderKeyStatus]:
        rows = await provider_keys.list_provider_keys(info.context.actor, tenant)
        return rows  # type: ignore[return-value]


@strawberry.type
class IdentityMutation:
    @strawberry.mutation(description="Update a tenant's details (platform admins).")
    async def update_tenant(
        self, info: Info[Context, None], input: UpdateTenantInput
    ) -> TenantPayload:
        tenant = await tenants.update_tenant(
            info.context.actor,
            input.name,
            display_name=input.display_name,
            email=input.email,
            team=input.team,
        )
        return TenantPayload(tenant=tenant)  # type: ignore[arg-type]

    @strawberry.mutation(
        description="Suspend: its callers keep reading; writes and new tasks are refused "
        "(TENANT_SUSPENDED); running tasks pause."
    )
    async def suspend_tenant(
        self, info: Info[Context, None], input: TenantNameInput
    ) -> TenantPayload:
        tenant = await tenants.suspend_tenant(info.context.actor, input.name)
        return TenantPayload(tenant=tenant)  # type: ignore[arg-type]

    @strawberry.mutation(description="Resume a suspended tenant and the tasks it paused.")
    async def resume_tenant(
        self, info: Info[Context, None], input: TenantNameInput
    ) -> TenantPayload:
        tenant = await tenants.resume_tenant(info.context.actor, input.name)
        return TenantPayload(tenant=tenant)  # type: ignore[arg-type]

    @strawberry.mutation(
        description="Delete (a tombstone): its tokens stop at once; restorable for 30 days."
    )
    async def delete_tenant(
        self, info: Info[Context, None], input: TenantNameInput
    ) -> TenantPayload:
        tenant = await tenants.delete_tenant(info.context.actor, input.name)
        return TenantPayload(tenant=tenant)  # type: ignore[arg-type]

    @strawberry.mutation(description="Restore a tenant deleted less than 30 days ago.")
    async def restore_tenant(
        self, info: Info[Context, None], input: TenantNameInput
    ) -> TenantPayload:
        tenant = await tenants.restore_tenant(info.context.actor, input.name)
        return TenantPayload(tenant=tenant)  # type: ignore[arg-type]

    @strawberry.mutation(description="Revoke a token: refused from its next request on.")
    async def revoke_access_token(
        self, info: Info[Context, None], input: IdInput
    ) -> AccessTokenPayload:
        token = await tokens.revoke_access_token(info.context.actor, input.id)
        return AccessTokenPayload(token=token)  # type: ignore[arg-type]

    @strawberry.mutation(description="Set (create or change) a monthly ceiling at a scope.")
    async def set_budget(self, info: Info[Context, None], input: SetBudgetInput) -> BudgetPayload:
        view = await budgets.set_budget(
            info.context.actor,
            scope=input.scope,
            monthly_limit_usd=Decimal(str(input.monthly_limit_usd)),
            tenant=input.tenant,
            account=input.account,
            agent_id=input.agent_id,
        )
        return BudgetPayload(budget=view)  # type: ignore[arg-type]

    @strawberry.mutation
    async def remove_budget(
        self, info: Info[Context, None], input: RemoveBudgetInput
    ) -> BudgetPayload:
        view = await budgets.remove_budget(
            info.context.actor,
            scope=input.scope,
            tenant=input.tenant,
            account=input.account,
            agent_id=input.agent_id,
        )
        return BudgetPayload(budget=view)  # type: ignore[arg-type]

    @strawberry.mutation(description="Create a local account holding a role.")
    async def create_user(self, info: Info[Context, None], input: CreateUserInput) -> UserPayload:
        user = await roles.create_user(
            info.context.actor,
            email=input.email,
            password=input.password,
            role=input.role,
            tenant=input.tenant,
            display_name=input.display_name,
        )
        return UserPayload(user=user)  # type: ignore[arg-type]

    @strawberry.mutation
    async def assign_role(
        self, info: Info[Context, None], input: AssignRoleInput
    ) -> RoleAssignmentPayload:
        assignment = await roles.assign_role(
            info.context.actor, input.user_id, role=input.role, tenant=input.tenant
        )
        return RoleAssignmentPayload(assignment=assignment)  # type: ignore[arg-type]

    @strawberry.mutation
    async def unassign_role(
        self, info: Info[Context, None], input: IdInput
    ) -> RoleAssignmentPayload:
        assignment = await roles.unassign_role(info.context.actor, input.id)
        return RoleAssignmentPayload(assignment=assignment)  # type: ignore[arg-type]

    @strawberry.mutation
    async def revoke_session(self, info: Info[Context, None], input: IdInput) -> SessionPayload:
        session = await accounts.revoke_session(info.context.actor, input.id)
        return SessionPayload(session=session)  # type: ignore[arg-type]

    @strawberry.mutation(description="Change your password; your other sessions end.")
    async def change_password(
        self, info: Info[Context, None], input: ChangePasswordInput
    ) -> OkPayload:
        await accounts.change_password(
            info.context.actor, input.current_password, input.new_password
        )
        return OkPayload(ok=True)

    @strawberry.mutation
    async def set_provider_key(
        self, info: Info[Context, None], input: SetProviderKeyInput
    ) -> ProviderKeyPayload:
        status = await provider_keys.set_provider_key(
            info.context.actor, input.provider, api_key=input.api_key, tenant=input.tenant
        )
        return ProviderKeyPayload(provider_key=status)  # type: ignore[arg-type]

    @strawberry.mutation
    async def delete_provider_key(
        self, info: Info[Context, None], input: DeleteProviderKeyInput
    ) -> ProviderKeyPayload:
        status = await provider_keys.delete_provider_key(
            info.context.actor, input.provider, tenant=input.tenant
        )
        return ProviderKeyPayload(provider_key=status)  # type: ignore[arg-type]


def _alert(message: dict[str, Any]) -> BudgetAlert:
    return BudgetAlert(
        budget_id=strawberry.ID(message["budget_id"]),
        scope=models.BudgetScope(message["scope"]),
        tenant_id=message["tenant_id"],
        account=message["account"],
        agent_id=message["agent_id"],
        window=message["window"],
        alert_state=AlertState(message["alert_state"]),
        monthly_limit_usd=float(message["monthly_limit_usd"]),
        current_spend_usd=float(message["current_spend_usd"]),
        at=datetime.fromisoformat(message["at"]),
    )


@strawberry.type
class IdentitySubscription:
    @strawberry.subscription(
        description="Budget threshold crossings (warning at 80 %, exceeded at 100 %), "
        "once per budget, level and window."
    )
    async def budget_alerts(self, info: Info[Context, None]) -> AsyncGenerator[BudgetAlert, None]:
        # Through the alerts feed (subscriptions/feeds.py), as taskEvents goes.
        frames = LiveFrames.of(info, convert=_alert)
        alerts = budgets.budget_alerts(info.context.actor, frames)
        async with contextlib.aclosing(alerts):
            async for message in alerts:
                yield _alert(message)
