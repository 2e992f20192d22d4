"""Factories: real rows through the same functions the product uses."""

from agentplane.models import Agent, Tenant, User
from agentplane.resolvers import roles
from agentplane.resolvers.auth import Actor
from agentplane.resolvers.tokens import mint_token

PASSWORD = "correct horse battery"
PLATFORM = Actor(kind="token", role="platform_admin", tenant_id=None)


async def make_tenant(name: str) -> Tenant:
    return await Tenant.create(name=name, display_name=name.title())


async def make_token(tenant: Tenant | None, role: str) -> str:
    _, plaintext = await mint_token(
        tenant_id=tenant.id if tenant else None, role=role, name=f"{role} token"
    )
    return plaintext


async def make_agent(tenant: Tenant, name: str = "echo", **fields: object) -> Agent:
    fields.setdefault("model", "scripted/echo")
    return await Agent.create(tenant_id=tenant.id, name=name, **fields)


async def make_user(email: str, role: str, tenant: Tenant | None = None) -> User:
    """A local account (password `PASSWORD`) holding `role` in `tenant` (or the platform)."""
    return await roles.create_user(
        PLATFORM,
        email=email,
        password=PASSWORD,
        role=role,
        tenant=tenant.name if tenant else None,
    )
