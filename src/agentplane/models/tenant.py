from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from agentplane.core import ids


class TenantPhase(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    DELETED = "deleted"


class Tenant(Model):
    id = fields.CharField(max_length=40, primary_key=True, default=ids.tenant_id)
    name = fields.CharField(max_length=63, unique=True)
    display_name = fields.CharField(max_length=200, default="")
    email = fields.CharField(max_length=320, default="")
    team = fields.CharField(max_length=200, default="")
    phase = fields.CharEnumField(TenantPhase, max_length=16, default=TenantPhase.ACTIVE)
    monthly_budget_usd = fields.DecimalField(max_digits=20, decimal_places=10, null=True)
    # Set when the tenant is deleted (a tombstone): restorable until the purge job runs.
    deleted_at = fields.DatetimeField(null=True)
    suspended_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "tenant"


class AccessToken(Model):
    id = fields.CharField(max_length=40, primary_key=True, default=ids.token_id)
    # Null tenant = platform scope (only for platform_admin tokens).
    tenant: fields.ForeignKeyNullableRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name="tokens", null=True, on_delete=fields.CASCADE
    )
    tenant_id: str | None
    name = fields.CharField(max_length=200)
    role = fields.CharField(max_length=32)
    # SHA-256 of the token: tokens carry 256 random bits, so a fast hash is not brute-forceable.
    token_hash = fields.CharField(max_length=64, unique=True)
    # The first characters of the plaintext, shown in listings so a user can tell tokens apart.
    prefix = fields.CharField(max_length=16)
    expires_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)
    last_used_at = fields.DatetimeField(null=True)
    # The user this token acts for (device-flow logins); null for service tokens.
    owner_user_id = fields.CharField(max_length=40, null=True)
    # Who created it: a user, token or "admin_token" subject.
    created_by = fields.CharField(max_length=40, null=True)
    # Whom it is for, as its creator named it (OpenCrane's free-form `owner`).
    owner = fields.CharField(max_length=200, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "access_token"
