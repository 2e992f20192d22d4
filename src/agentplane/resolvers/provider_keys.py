"""Tenants' model-provider API keys: stored encrypted, never returned."""

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar, cast

from agentplane.core import secretbox
from agentplane.core.errors import NotConfigured, NotFound, ValidationFailed
from agentplane.models import ProviderKey
from agentplane.resolvers.audit import audited
from agentplane.resolvers.auth import Actor
from agentplane.resolvers.permissions import Perm, require
from agentplane.resolvers.tenants import resolve_tenant_name
from agentplane.runtime import catalog
from agentplane.runtime.providers.base import ProviderError

P = TypeVar("P")

PROVIDER_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass
class ProviderKeyStatus:
    provider: str
    configured: bool
    updated_at: datetime | None
    tenant_id: str


def _status(row: ProviderKey) -> ProviderKeyStatus:
    return ProviderKeyStatus(row.provider, True, row.updated_at, row.tenant_id)


async def _tenant_for(actor: Actor, tenant: str | None) -> str:
    if tenant is None and actor.tenant_id is not None:
        return actor.tenant_id
    from agentplane.models import Tenant

    row = await Tenant.get_or_none(name=tenant) if tenant else None
    if row is None or (actor.tenant_id is not None and row.id != actor.tenant_id):
        raise NotFound(f"Tenant {tenant!r} not found")
    return row.id


async def list_provider_keys(
    actor: Actor | None, tenant: str | None = None
) -> list[ProviderKeyStatus]:
    actor = require(actor, Perm.PROVIDER_KEY_READ)
    tenant_id = await _tenant_for(actor, tenant)
    return [_status(r) for r in await ProviderKey.filter(tenant_id=tenant_id).order_by("provider")]


@audited("provider_key.set")
async def set_provider_key(
    actor: Actor | None, provider: str, *, api_key: str, tenant: str | None = None
) -> ProviderKeyStatus:
    actor = require(actor, Perm.PROVIDER_KEY_WRITE)
    if not PROVIDER_RE.match(provider):
        raise ValidationFailed("`provider` must be a short lowercase name", field="provider")
    if provider not in catalog.KEYED_PROVIDERS:
        raise NotFound(
            f"Provider {provider!r} not found; keys are taken for {sorted(catalog.KEYED_PROVIDERS)}"
        )
    if not api_key.strip() or len(api_key) > 4096:
        raise ValidationFailed("`apiKey` must be 1-4096 characters", field="apiKey")
    tenant_id = await resolve_tenant_name(actor, tenant)
    ciphertext = secretbox.encrypt(api_key.strip())
    updated = await ProviderKey.filter(tenant_id=tenant_id, provider=provider).update(
        ciphertext=ciphertext
    )
    if not updated:
        await ProviderKey.create(tenant_id=tenant_id, provider=provider, ciphertext=ciphertext)
    return _status(await ProviderKey.get(tenant_id=tenant_id, provider=provider))


@audited("provider_key.delete")
async def delete_provider_key(
    actor: Actor | None, provider: str, *, tenant: str | None = None
) -> ProviderKeyStatus:
    actor = require(actor, Perm.PROVIDER_KEY_WRITE)
    tenant_id = await resolve_tenant_name(actor, tenant)
    row = await ProviderKey.get_or_none(tenant_id=tenant_id, provider=provider)
    if row is None:
        raise NotFound(f"No {provider!r} key is configured")
    await ProviderKey.filter(id=row.id).delete()
    return ProviderKeyStatus(provider, False, None, tenant_id)


async def tenant_api_key(tenant_id: str, provider: str) -> str | None:
    """For the runtime: the tenant's own key for `provider`, decrypted, if it set one."""
    row = await ProviderKey.get_or_none(tenant_id=tenant_id, provider=provider)
    return None if row is None else secretbox.decrypt(row.ciphertext)


async def for_tenant(provider: P, tenant_id: str, name: str) -> P:
    """The provider as the tenant calls it: with the tenant's own key when it set one
    (and the provider takes keys), else the installation's."""
    with_key = getattr(provider, "with_api_key", None)
    if with_key is None:
        return provider
    try:
        key = await tenant_api_key(tenant_id, name)
    except NotConfigured as exc:
        raise ProviderError(f"The tenant's {name} key cannot be used: {exc.message}") from None
    return provider if key is None else cast(P, with_key(key))
