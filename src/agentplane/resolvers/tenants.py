import re

from tortoise.exceptions import IntegrityError

from agentplane.auth import Actor
from agentplane.errors import Conflict, NotFound, ValidationFailed
from agentplane.models import Tenant
from agentplane.resolvers.pagination import Page, paginate
from agentplane.resolvers.permissions import Perm, check_tenant, is_platform, require

# A DNS label, so tenant names can name namespaces, hosts and URL segments.
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


async def create_tenant(
    actor: Actor | None, *, name: str, display_name: str = "", email: str = "", team: str = ""
) -> Tenant:
    require(actor, Perm.TENANT_WRITE)
    if not NAME_RE.match(name):
        raise ValidationFailed(
            "Tenant name must be a DNS label: lowercase letters, digits and '-', 1-63 chars",
            field="name",
        )
    if email and not EMAIL_RE.match(email):
        raise ValidationFailed("Invalid email address", field="email")
    try:
        return await Tenant.create(name=name, display_name=display_name, email=email, team=team)
    except IntegrityError:
        raise Conflict(f"Tenant {name!r} already exists", field="name") from None


async def get_tenant(actor: Actor | None, name: str) -> Tenant:
    actor = require(actor, Perm.TENANT_READ)
    tenant = await Tenant.get_or_none(name=name)
    if tenant is None:
        raise NotFound(f"Tenant {name!r} not found")
    check_tenant(actor, tenant.id, f"Tenant {name!r}")
    return tenant


async def get_tenant_by_id(actor: Actor | None, tenant_id: str) -> Tenant:
    actor = require(actor, Perm.TENANT_READ)
    check_tenant(actor, tenant_id, "Tenant")
    tenant = await Tenant.get_or_none(id=tenant_id)
    if tenant is None:
        raise NotFound("Tenant not found")
    return tenant


async def list_tenants(actor: Actor | None, first: int | None, after: str | None) -> Page[Tenant]:
    actor = require(actor, Perm.TENANT_READ)
    qs = Tenant.all() if is_platform(actor) else Tenant.filter(id=actor.tenant_id)
    return await paginate(qs, first, after)


async def load_tenants(actor: Actor | None, ids: list[str]) -> list[Tenant | None]:
    """Batch lookup for DataLoaders: foreign or missing IDs come back as None."""
    actor = require(actor, Perm.TENANT_READ)
    allowed = ids if is_platform(actor) else [i for i in ids if i == actor.tenant_id]
    by_id = {t.id: t for t in await Tenant.filter(id__in=allowed)}
    return [by_id.get(i) for i in ids]


async def resolve_tenant_name(actor: Actor, name: str | None) -> str:
    """The tenant a write goes to: platform callers must name one, others get their own."""
    if name is None:
        if actor.tenant_id is None:
            raise ValidationFailed(
                "`tenant` is required for platform-scoped callers", field="tenant"
            )
        return actor.tenant_id
    tenant = await Tenant.get_or_none(name=name)
    if tenant is None or not (is_platform(actor) or tenant.id == actor.tenant_id):
        raise NotFound(f"Tenant {name!r} not found")
    return tenant.id
