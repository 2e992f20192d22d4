"""People and how they get in: users, role definitions and assignments, browser
sessions, device-flow grants, OIDC login attempts, and tenants' provider keys."""

from tortoise import fields
from tortoise.models import Model

from agentplane.core import ids
from agentplane.models.tenant import Tenant


class RoleDefinition(Model):
    """A role as data: its name and the permissions it grants (seeded at start-up)."""

    name = fields.CharField(max_length=32, primary_key=True)
    description = fields.TextField(default="")
    permissions: fields.JSONField[list[str]] = fields.JSONField(default=list)
    # "platform": assignable only at platform scope; "tenant": only in a tenant; "any": both.
    scope = fields.CharField(max_length=16, default="any")
    builtin = fields.BooleanField(default=True)

    class Meta:
        table = "role_definition"


class User(Model):
    id = fields.CharField(max_length=40, primary_key=True, default=ids.user_id)
    email = fields.CharField(max_length=320, unique=True)
    display_name = fields.CharField(max_length=200, default="")
    # argon2id hash; null for accounts that only sign in through OIDC.
    password_hash = fields.CharField(max_length=200, null=True)
    oidc_issuer = fields.CharField(max_length=500, null=True)
    oidc_subject = fields.CharField(max_length=255, null=True)
    disabled = fields.BooleanField(default=False)
    # After this instant the account can no longer sign in, and its tokens have expired.
    not_after = fields.DatetimeField(null=True)
    # True for the installation's first owner only: the unique index makes a second,
    # concurrent first-owner registration fail (null for everyone else).
    owner = fields.BooleanField(null=True, unique=True)
    # The tenant the account was made in (null: the platform's). Membership outlives roles:
    # a user whose last role there was removed stays visible to, and removable by, its admins.
    home_tenant: fields.ForeignKeyNullableRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name="home_users", null=True, on_delete=fields.SET_NULL
    )
    home_tenant_id: str | None
    last_login_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "user_account"
        unique_together = (("oidc_issuer", "oidc_subject"),)


class RoleAssignment(Model):
    """A principal (user) holds a role at a scope: the platform (tenant null) or a tenant."""

    id = fields.CharField(max_length=40, primary_key=True, default=ids.role_assignment_id)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="assignments", on_delete=fields.CASCADE
    )
    user_id: str
    role = fields.CharField(max_length=32)
    tenant: fields.ForeignKeyNullableRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name="assignments", null=True, on_delete=fields.CASCADE
    )
    tenant_id: str | None
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "role_assignment"
        unique_together = (("user", "tenant"),)


class Session(Model):
    """A server-side browser session: the cookie holds a secret whose hash is stored."""

    id = fields.CharField(max_length=40, primary_key=True, default=ids.session_id)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="sessions", on_delete=fields.CASCADE
    )
    user_id: str
    secret_hash = fields.CharField(max_length=64, unique=True)
    csrf_token = fields.CharField(max_length=64)
    method = fields.CharField(max_length=16)  # "password" | "oidc"
    user_agent = fields.CharField(max_length=300, default="")
    ip = fields.CharField(max_length=64, default="")
    expires_at = fields.DatetimeField()
    last_seen_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "session"


class DeviceGrant(Model):
    """RFC 8628 device authorization: pending, approved (browser) then delivered (poll)."""

    id = fields.CharField(max_length=40, primary_key=True, default=ids.device_grant_id)
    device_code_hash = fields.CharField(max_length=64, unique=True)
    user_code = fields.CharField(max_length=16, unique=True)
    status = fields.CharField(max_length=16, default="pending")
    user_id = fields.CharField(max_length=40, null=True)
    expires_at = fields.DatetimeField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "device_grant"


class OidcLogin(Model):
    """One OIDC authorization-code attempt: state, nonce and the PKCE verifier."""

    id = fields.CharField(max_length=40, primary_key=True, default=ids.oidc_login_id)
    state = fields.CharField(max_length=100, unique=True)
    nonce = fields.CharField(max_length=100)
    code_verifier = fields.CharField(max_length=200)
    return_to = fields.CharField(max_length=500, default="/")
    expires_at = fields.DatetimeField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "oidc_login"


class ProviderKey(Model):
    """A tenant's API key for a model provider, encrypted at rest (Fernet)."""

    id = fields.CharField(max_length=40, primary_key=True, default=ids.provider_key_id)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name="provider_keys", on_delete=fields.CASCADE
    )
    tenant_id: str
    provider = fields.CharField(max_length=64)
    ciphertext = fields.TextField()
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "provider_key"
        unique_together = (("tenant", "provider"),)
