"""OIDC single sign-on (authorization code + PKCE) with Authlib; ID tokens are
verified with joserfc against the issuer's published keys."""

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from tortoise.exceptions import IntegrityError

from agentplane.core.config import Settings
from agentplane.core.errors import NotConfigured, Unauthenticated
from agentplane.models import OidcLogin, RoleAssignment, Tenant, User
from agentplane.resolvers import audit

LOGIN_TTL = timedelta(minutes=10)
DISCOVERY_TTL_S = 300
CALLBACK_PATH = "/api/v1/auth/callback"
_discovery: dict[str, tuple[float, dict[str, Any]]] = {}


def configured(settings: Settings) -> bool:
    return bool(settings.oidc_issuer and settings.oidc_client_id)


def _client(settings: Settings, public_url: str) -> AsyncOAuth2Client:
    if not configured(settings):
        raise NotConfigured("OIDC is not configured (AGENTPLANE_OIDC_ISSUER, _CLIENT_ID)")
    return AsyncOAuth2Client(
        client_id=settings.oidc_client_id,
        client_secret=settings.oidc_client_secret,
        token_endpoint_auth_method="client_secret_basic" if settings.oidc_client_secret else "none",
        scope="openid email profile",
        redirect_uri=public_url + CALLBACK_PATH,
        code_challenge_method="S256",
    )


async def metadata(issuer: str) -> dict[str, Any]:
    cached = _discovery.get(issuer)
    if cached and cached[0] > time.monotonic():
        return cached[1]
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(issuer.rstrip("/") + "/.well-known/openid-configuration")
        response.raise_for_status()
        meta: dict[str, Any] = response.json()
    if meta.get("issuer") != issuer:
        raise Unauthenticated("The OIDC issuer's metadata names another issuer")
    _discovery[issuer] = (time.monotonic() + DISCOVERY_TTL_S, meta)
    return meta


def safe_return_to(value: str | None) -> str:
    """Only local paths: never redirect a signed-in browser to another site."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value[:500]
    return "/"


async def start_login(settings: Settings, public_url: str, return_to: str | None) -> str:
    """The identity provider's authorization URL for a new login attempt."""
    client = _client(settings, public_url)
    assert settings.oidc_issuer is not None
    meta = await metadata(settings.oidc_issuer)
    state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    verifier = secrets.token_urlsafe(48)
    await OidcLogin.create(
        state=state,
        nonce=nonce,
        code_verifier=verifier,
        return_to=safe_return_to(return_to),
        expires_at=datetime.now(UTC) + LOGIN_TTL,
    )
    url, _ = client.create_authorization_url(
        meta["authorization_endpoint"], state=state, code_verifier=verifier, nonce=nonce
    )
    return str(url)


@dataclass
class Completed:
    user: User
    return_to: str


async def finish_login(settings: Settings, public_url: str, code: str, state: str) -> Completed:
    """Exchange the code (with the PKCE verifier), verify the ID token, find or create
    the user."""
    login = await OidcLogin.get_or_none(state=state)
    # Single use: the first callback with this state deletes it.
    if login is None or not await OidcLogin.filter(id=login.id).delete():
        raise Unauthenticated("Unknown or already used login attempt; start again")
    if login.expires_at <= datetime.now(UTC):
        raise Unauthenticated("The login attempt expired; start again")
    assert settings.oidc_issuer is not None
    meta = await metadata(settings.oidc_issuer)
    async with _client(settings, public_url) as client:
        try:
            token = await client.fetch_token(
                meta["token_endpoint"], code=code, code_verifier=login.code_verifier
            )
        except Exception as exc:
            raise Unauthenticated(f"The identity provider refused the code: {exc}") from None
        jwks = (await client.get(meta["jwks_uri"])).json()
    claims = _verify_id_token(token.get("id_token"), jwks, settings, login.nonce)
    user = await _user_for(settings, claims)
    return Completed(user, login.return_to)


def _verify_id_token(
    id_token: Any, jwks: dict[str, Any], settings: Settings, nonce: str
) -> dict[str, Any]:
    if not isinstance(id_token, str):
        raise Unauthenticated("The identity provider returned no ID token")
    try:
        keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
        decoded = jwt.decode(id_token, keys, algorithms=["RS256", "ES256"])
        jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": str(settings.oidc_issuer)},
            aud={"essential": True, "value": str(settings.oidc_client_id)},
            sub={"essential": True},
            exp={"essential": True},
            nonce={"essential": True, "value": nonce},
            leeway=60,
        ).validate(decoded.claims)
    except (JoseError, ValueError) as exc:
        raise Unauthenticated(f"Invalid ID token: {exc}") from None
    return dict(decoded.claims)


async def _user_for(settings: Settings, claims: dict[str, Any]) -> User:
    issuer, subject = settings.oidc_issuer, str(claims["sub"])
    user = await User.get_or_none(oidc_issuer=issuer, oidc_subject=subject)
    if user is not None:
        return user
    email = str(claims.get("email") or "").lower()
    if email and claims.get("email_verified") is True:
        # Link an existing local account with the same, verified address.
        existing = await User.get_or_none(email=email)
        if existing is not None and existing.oidc_subject is None:
            await User.filter(id=existing.id).update(oidc_issuer=issuer, oidc_subject=subject)
            return await User.get(id=existing.id)
    if not email:
        email = f"{subject}@oidc.invalid"
    try:
        user = await User.create(
            email=email,
            display_name=str(claims.get("name") or "")[:200],
            oidc_issuer=issuer,
            oidc_subject=subject,
        )
    except IntegrityError:
        raise Unauthenticated(
            "An account with this email exists; sign in with its password to link it"
        ) from None
    if settings.oidc_default_role:
        tenant = (
            await Tenant.get_or_none(name=settings.oidc_default_tenant)
            if settings.oidc_default_tenant
            else None
        )
        await RoleAssignment.create(
            user_id=user.id,
            role=settings.oidc_default_role,
            tenant_id=tenant.id if tenant else None,
        )
        if tenant is not None:
            await User.filter(id=user.id).update(home_tenant_id=tenant.id)
    await audit.record(None, "account.create", resource=user.id, details={"via": "oidc"})
    return user
