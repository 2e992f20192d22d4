"""Koda control-plane auth (`/api/control-plane/auth/*`): the owner, sessions, API tokens.

Shapes follow Koda's control plane: sign-in answers `{ok, operator, session_token,
auth}`. Koda's dashboard keeps `session_token` server-side and sends it back as
`Authorization: Bearer`; a browser talking to agentplane directly gets it as the
`koda_operator_session` cookie instead, and then sends the `csrf_token` of the same
answer as `X-CSRF-Token` on every write. The owner is the installation's first user
account (a platform admin): registration is open only while no user exists. The
login `identifier` is the account's email.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.responses import Response

from agentplane.core.errors import DomainError
from agentplane.models import AccessToken, Session, User
from agentplane.resolvers import accounts, tokens, users
from agentplane.resolvers.auth import (
    KODA_SESSION_COOKIE,
    Actor,
    bearer_from_header,
    credential_or_none,
    user_actor,
)
from agentplane.rest_compat.common import (
    BOOL,
    DATETIME,
    STR,
    Call,
    Param,
    Resp,
    array,
    iso,
    json,
    nullable,
    obj,
    record,
    request_actor,
)
from agentplane.rest_compat.koda import koda

A = "/api/control-plane/auth"
_SUBJECT = {"user": "operator", "token": "api_token", "admin_token": "break_glass"}

IDENTITY = {"id": STR, "username": STR, "email": STR, "display_name": STR}
OPERATOR = record({**IDENTITY, "role": nullable(STR), "last_login_at": nullable(DATETIME)})
AUTH_STATUS = record(
    {
        "has_owner": BOOL,
        "bootstrap_required": BOOL,
        "auth_mode": STR,
        "session_required": BOOL,
        "recovery_available": BOOL,
        "authenticated": BOOL,
        "session_subject": nullable(STR),
        "operator": nullable(record(IDENTITY)),
        "csrf_token": nullable(STR),
    }
)
SIGNED_IN = record(
    {
        "ok": BOOL,
        "operator": OPERATOR,
        "session_token": STR,
        "csrf_token": STR,
        "auth": AUTH_STATUS,
    }
)
OK = Resp(record({"ok": BOOL}))
SESSION = record(
    {
        "session_id": STR,
        "subject_type": STR,
        "label": STR,
        "user_agent": STR,
        "ip": STR,
        "created_at": DATETIME,
        "last_used_at": nullable(DATETIME),
        "expires_at": DATETIME,
        "revoked_at": nullable(DATETIME),
        "is_current": BOOL,
    }
)
TOKEN_FIELDS = {
    "id": STR,
    "token_name": STR,
    "token_prefix": STR,
    "scopes": array(STR),
    "role": STR,
    "tenant_id": nullable(STR),
    "expires_at": nullable(DATETIME),
}
TOKEN = record(
    {
        **TOKEN_FIELDS,
        "created_at": DATETIME,
        "last_used_at": nullable(DATETIME),
        "revoked_at": nullable(DATETIME),
    }
)
NEW_TOKEN = record({**TOKEN_FIELDS, "token": STR})
NAME = {"type": "string", "minLength": 1, "maxLength": 200}
SCOPES = {"type": "array", "items": {"type": "string", "enum": ["control_plane"]}}


def _identity(user: User) -> dict[str, Any]:
    # No usernames here: the email is what signs in.
    return {
        "id": user.id,
        "username": user.email,
        "email": user.email,
        "display_name": user.display_name or user.email,
    }


async def _status(call: Call, actor: Actor | None) -> dict[str, Any]:
    has_owner = await accounts.has_users()
    user = await accounts.get_user(actor)
    csrf = None
    if actor is not None and actor.session_id is not None:
        csrf = (await Session.get(id=actor.session_id)).csrf_token
    return {
        "has_owner": has_owner,
        "bootstrap_required": not has_owner,
        "auth_mode": "local_account",
        "session_required": has_owner,
        "recovery_available": call.settings.admin_token is not None,
        "authenticated": actor is not None,
        "session_subject": _SUBJECT.get(actor.kind) if actor is not None else None,
        "operator": _identity(user) if user is not None else None,
        "csrf_token": csrf,
    }


async def _signed_in(
    call: Call, session: Session, secret: str, user: User, status: int = 200
) -> Response:
    actor = await user_actor(user, session.id)
    body = {
        "ok": True,
        "operator": {
            **_identity(user),
            "role": actor.role or None,
            "last_login_at": iso(datetime.now(UTC)),
        },
        "session_token": secret,
        "csrf_token": session.csrf_token,
        "auth": await _status(call, actor),
    }
    response = json(body, status, headers={"Cache-Control": "no-store"})
    response.set_cookie(
        KODA_SESSION_COOKIE,
        secret,
        max_age=call.settings.session_ttl_h * 3600,
        httponly=True,
        secure=call.settings.production,
        samesite="strict",
        path="/",
    )
    return response


def _ttl(call: Call) -> timedelta:
    return timedelta(hours=call.settings.session_ttl_h)


def _client(call: Call) -> tuple[str, str]:
    client = call.request.client
    return call.request.headers.get("user-agent", ""), client.host if client else ""


@koda.route(
    "POST",
    f"{A}/register-owner",
    summary="Register the first owner (only while the installation has no user account)",
    description=(
        "Creates the owner, a platform admin, and signs them in. From another machine than "
        "the server's, `bootstrap_code` (or `Authorization: Bearer`) must be the "
        "platform-admin token `serve` printed on the empty database (or "
        "AGENTPLANE_ADMIN_TOKEN); `registration_token` is accepted and not needed; "
        "`username` is kept as the display name when `display_name` is absent."
    ),
    ok={201: Resp(SIGNED_IN, "Registered and signed in: the session cookie is set")},
    body=obj(
        {
            "email": STR,
            "password": STR,
            "username": STR,
            "display_name": STR,
            "bootstrap_code": STR,
            "registration_token": STR,
        },
        required=("email", "password"),
    ),
    public=True,
    errors=(403, 409, 429),
)
async def register_owner(call: Call) -> Response:
    body = call.body
    name = body.get("display_name") or body.get("username") or ""
    code = bearer_from_header(call.request.headers.get("authorization")) or body.get(
        "bootstrap_code"
    )
    settings = call.request.app.state.settings
    user = await accounts.register_first_owner(
        body["email"],
        body["password"],
        name,
        client_ip=_client(call)[1],
        bootstrap=await credential_or_none(code, settings.admin_token),
    )
    session, secret = await accounts.create_session(user, "password", _ttl(call), *_client(call))
    return await _signed_in(call, session, secret, user, 201)


@koda.route(
    "POST",
    f"{A}/login",
    summary="Sign in with email (`identifier`) and password",
    ok=Resp(SIGNED_IN, "Signed in: the session cookie is set"),
    body=obj(
        {"identifier": {"type": "string", "minLength": 1}, "password": STR},
        required=("identifier", "password"),
    ),
    public=True,
    errors=(401, 429),
)
async def login(call: Call) -> Response:
    session, secret, user = await accounts.login_password(
        call.body["identifier"], call.body["password"], _ttl(call), *_client(call)
    )
    return await _signed_in(call, session, secret, user)


@koda.route("POST", f"{A}/logout", summary="End this session", ok=OK)
async def logout(call: Call) -> Response:
    await accounts.logout(call.actor)
    response = json({"ok": True})
    response.delete_cookie(KODA_SESSION_COOKIE, path="/")
    return response


@koda.route(
    "GET",
    f"{A}/status",
    summary="Whether an owner exists, and who is signed in (never 401)",
    ok=Resp(AUTH_STATUS),
    public=True,
)
async def status(call: Call) -> Response:
    try:
        actor = await request_actor(call.request, KODA_SESSION_COOKIE)
    except DomainError:  # a stale or wrong credential reads as signed out
        actor = None
    return json(await _status(call, actor))


def _session_record(session: Session, actor: Actor | None) -> dict[str, Any]:
    return {
        "session_id": session.id,
        "subject_type": "operator",
        "label": session.method,
        "user_agent": session.user_agent,
        "ip": session.ip,
        "created_at": iso(session.created_at),
        "last_used_at": iso(session.last_seen_at),
        "expires_at": iso(session.expires_at),
        "revoked_at": iso(session.revoked_at),
        "is_current": actor is not None and actor.session_id == session.id,
    }


@koda.route(
    "GET",
    f"{A}/sessions",
    summary="The signed-in user's live sessions",
    ok=Resp(record({"items": array(SESSION)})),
)
async def list_sessions(call: Call) -> Response:
    rows = await accounts.list_sessions(call.actor)
    return json({"items": [_session_record(s, call.actor) for s in rows]})


@koda.route("DELETE", f"{A}/sessions/{{session_id}}", summary="Revoke a session", ok=OK)
async def revoke_session(call: Call) -> Response:
    await accounts.revoke_session(call.actor, call.path["session_id"])
    return json({"ok": True})


def _token_fields(token: AccessToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "token_name": token.name,
        "token_prefix": token.prefix,
        "scopes": ["control_plane"],
        "role": token.role,
        "tenant_id": token.tenant_id,
        "expires_at": iso(token.expires_at),
    }


@koda.route(
    "GET",
    f"{A}/tokens",
    summary="API tokens acting for the signed-in user, newest first (revoked ones too)",
    ok=Resp(record({"items": array(TOKEN), "next_cursor": nullable(STR)})),
    query=(
        Param("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 100}),
        Param("cursor", STR),
    ),
)
async def list_tokens(call: Call) -> Response:
    page = await tokens.list_personal_tokens(
        call.actor, call.query["limit"], call.query.get("cursor")
    )
    items = [
        {
            **_token_fields(t),
            "created_at": iso(t.created_at),
            "last_used_at": iso(t.last_used_at),
            "revoked_at": iso(t.revoked_at),
        }
        for t in page.items
    ]
    next_cursor = page.cursor(page.items[-1]) if page.has_next else None
    return json({"items": items, "next_cursor": next_cursor})


@koda.route(
    "POST",
    f"{A}/tokens",
    summary="Create an API token acting for the signed-in user (shown once)",
    description=(
        "The token carries the user's current role and scope. `expires_in_days` defaults "
        "to 30; the only scope is `control_plane`."
    ),
    ok={201: Resp(NEW_TOKEN, "Created: `token` is shown only now")},
    body=obj(
        {
            "token_name": NAME,
            "name": NAME,
            "expires_in_days": {"type": "integer", "minimum": 1, "maximum": 3650},
            "scopes": SCOPES,
        }
    ),
    body_required=False,
)
async def create_token(call: Call) -> Response:
    body = call.body
    days = body.get("expires_in_days")
    token, plaintext = await users.mint_user_token(
        call.actor,
        user_id=None,
        name=body.get("token_name") or body.get("name") or "CLI token",
        expires_at=datetime.now(UTC) + timedelta(days=days) if days else None,
    )
    return json({**_token_fields(token), "token": plaintext}, 201)


@koda.route(
    "DELETE",
    f"{A}/tokens/{{token_id}}",
    summary="Revoke an API token (your own, or one you manage)",
    ok=OK,
)
async def revoke_token(call: Call) -> Response:
    await tokens.revoke_access_token(call.actor, call.path["token_id"])
    return json({"ok": True})
