"""`/api/v1/auth/*`: registration, password and OIDC login, logout, password change,
sessions, and the device grant for the CLI (paths and shapes after OpenCrane's)."""

import html
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from agentplane.core.config import Settings
from agentplane.core.errors import DomainError, Unauthenticated, ValidationFailed
from agentplane.models import Session, User
from agentplane.resolvers import accounts, audit, device, oidc
from agentplane.resolvers.auth import (
    SESSION_COOKIE,
    Actor,
    account_active,
    authenticate_request,
    bearer_from_header,
    credential_or_none,
    user_actor,
)
from agentplane.rest_compat import opencrane
from agentplane.rest_compat.common import (
    DATETIME,
    INT,
    OBJ,
    STR,
    Call,
    Dialect,
    Param,
    Resp,
    array,
    nullable,
    obj,
    record,
)


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.body() or b"{}")
    except orjson.JSONDecodeError:
        raise ValidationFailed("Request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ValidationFailed("Request body must be a JSON object")
    return body


def _str(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise ValidationFailed(f"`{name}` is required and must be a string", field=name)
    return value


async def _actor(request: Request) -> Actor | None:
    return await authenticate_request(
        request.method, request.headers, request.cookies, _settings(request).admin_token
    )


def _user_json(user: User) -> dict[str, Any]:
    return {"sub": user.id, "email": user.email, "name": user.display_name}


def _set_cookie(response: Response, secret: str, settings: Settings) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=settings.session_ttl_h * 3600,
        httponly=True,
        secure=settings.production,
        samesite="lax",
        path="/",
    )


def _public_url(request: Request) -> str:
    """AGENTPLANE_PUBLIC_URL, or this request's own origin."""
    return _settings(request).public_url or str(request.base_url).rstrip("/")


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


async def _login_response(
    session: Session, secret: str, user: User, settings: Settings, status: int = 200
) -> Response:
    response = _json({"user": _user_json(user), "csrfToken": session.csrf_token}, status)
    _set_cookie(response, secret, settings)
    return response


async def register(request: Request) -> Response:
    """First-owner registration: open only while the installation has no user."""
    body = await _body(request)
    settings = _settings(request)
    bearer = bearer_from_header(request.headers.get("authorization"))
    user = await accounts.register_first_owner(
        _str(body, "email"),
        _str(body, "password"),
        str(body.get("name") or ""),
        client_ip=_client_ip(request),
        bootstrap=await credential_or_none(bearer, settings.admin_token),
    )
    session, secret = await accounts.create_session(
        user,
        "password",
        timedelta(hours=settings.session_ttl_h),
        request.headers.get("user-agent", ""),
        _client_ip(request),
    )
    return await _login_response(session, secret, user, settings, 201)


async def login(request: Request) -> Response:
    body = await _body(request)
    settings = _settings(request)
    session, secret, user = await accounts.login_password(
        _str(body, "email"),
        _str(body, "password"),
        timedelta(hours=settings.session_ttl_h),
        request.headers.get("user-agent", ""),
        _client_ip(request),
    )
    return await _login_response(session, secret, user, settings)


async def logout(request: Request) -> Response:
    await accounts.logout(await _actor(request))
    response = _json({"status": "logged out"})
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


async def change_password(request: Request) -> Response:
    body = await _body(request)
    await accounts.change_password(
        await _actor(request), _str(body, "currentPassword"), _str(body, "newPassword")
    )
    return _json({"status": "password changed"})


async def me(request: Request) -> Response:
    """Never 401: who the caller is, or anonymous (and whether registration is open)."""
    settings = _settings(request)
    mode = "oidc" if oidc.configured(settings) else "local"
    try:
        actor = await _actor(request)
    except DomainError:
        actor = None
    body: dict[str, Any] = {"mode": mode, "authenticated": actor is not None, "user": None}
    if actor is not None:
        body["role"] = actor.role or None
        body["kind"] = actor.kind
        user = await accounts.get_user(actor)
        if user is not None:
            body["user"] = _user_json(user)
        if actor.session_id:
            session = await Session.get(id=actor.session_id)
            body["csrfToken"] = session.csrf_token
    else:
        body["registrationOpen"] = not await accounts.has_users()
    return _json(body)


async def sessions(request: Request) -> Response:
    rows = await accounts.list_sessions(await _actor(request))
    return _json(
        [
            {
                "id": s.id,
                "method": s.method,
                "userAgent": s.user_agent,
                "ip": s.ip,
                "createdAt": s.created_at.isoformat(),
                "lastSeenAt": s.last_seen_at.isoformat() if s.last_seen_at else None,
                "expiresAt": s.expires_at.isoformat(),
            }
            for s in rows
        ]
    )


async def revoke_session(request: Request) -> Response:
    session = await accounts.revoke_session(await _actor(request), request.path_params["id"])
    return _json({"id": session.id, "status": "revoked"})


# ---------------------------------------------------------------- OIDC


async def oidc_login(request: Request) -> Response:
    settings = _settings(request)
    url = await oidc.start_login(
        settings, _public_url(request), request.query_params.get("returnTo")
    )
    return RedirectResponse(url, status_code=302)


async def oidc_callback(request: Request) -> Response:
    settings = _settings(request)
    error = request.query_params.get("error")
    if error:
        await audit.record(
            None, "auth.login", outcome="failure", details={"method": "oidc", "error": error[:100]}
        )
        raise Unauthenticated(f"The identity provider answered: {error}")
    code, state = request.query_params.get("code"), request.query_params.get("state")
    if not code or not state:
        raise ValidationFailed("`code` and `state` are required")
    try:
        done = await oidc.finish_login(settings, _public_url(request), code, state)
    except Unauthenticated as exc:
        await audit.record(
            None,
            "auth.login",
            outcome="failure",
            details={"method": "oidc", "message": exc.message},
        )
        raise
    if not account_active(done.user):
        raise Unauthenticated("This account is disabled or expired")
    session, secret = await accounts.create_session(
        done.user,
        "oidc",
        timedelta(hours=settings.session_ttl_h),
        request.headers.get("user-agent", ""),
        _client_ip(request),
    )
    await audit.record(
        await user_actor(done.user, session.id),
        "auth.login",
        resource=done.user.id,
        details={"method": "oidc"},
    )
    response = RedirectResponse(done.return_to, status_code=302)
    _set_cookie(response, secret, settings)
    return response


# ---------------------------------------------------------------- device grant


async def device_start(request: Request) -> Response:
    started = await device.start()
    activate = _public_url(request) + "/api/v1/auth/device/activate"
    return _json(
        {
            "deviceCode": started.device_code,
            "userCode": started.user_code,
            "verificationUri": activate,
            "verificationUriComplete": f"{activate}?userCode={started.user_code}",
            "expiresIn": started.expires_in,
            "interval": started.interval,
        }
    )


_PAGE = """<!doctype html><meta charset="utf-8"><title>agentplane: {title}</title>
<body style="font-family: system-ui; max-width: 32em; margin: 4em auto">{body}</body>"""


async def device_activate_page(request: Request) -> Response:
    """Shows the code and a confirm button; approving is a POST with the CSRF token, so a
    link alone can never approve someone else's device."""
    actor = await _actor(request)
    code = request.query_params.get("userCode", "")
    if actor is None or actor.session_id is None:
        settings = _settings(request)
        back = f"/api/v1/auth/device/activate?userCode={code}"
        if oidc.configured(settings):
            return RedirectResponse(f"/api/v1/auth/login?returnTo={back}", status_code=302)
        raise Unauthenticated("Sign in in this browser first, then open this page again")
    grant = await device.pending_grant(code)
    session = await Session.get(id=actor.session_id)
    body = (
        f"<h1>Approve CLI login?</h1><p>Code <b>{html.escape(grant.user_code)}</b></p>"
        '<form method="post"><input type="hidden" name="userCode" '
        f'value="{html.escape(grant.user_code)}"><input type="hidden" name="csrfToken" '
        f'value="{html.escape(session.csrf_token)}"><button>Approve</button></form>'
    )
    return HTMLResponse(_PAGE.format(title="approve device", body=body))


async def device_activate(request: Request) -> Response:
    """Approve: JSON `{userCode}` with X-CSRF-Token, or the confirm page's form."""
    settings = _settings(request)
    is_form = request.headers.get("content-type", "").startswith(
        "application/x-www-form-urlencoded"
    )
    if is_form:
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        code = (form.get("userCode") or [""])[0]
        csrf = (form.get("csrfToken") or [""])[0]
        headers = {**request.headers, "x-csrf-token": csrf}
        actor = await authenticate_request(
            request.method, headers, request.cookies, settings.admin_token
        )
    else:
        code = _str(await _body(request), "userCode")
        actor = await _actor(request)
    grant = await device.approve(actor, code)
    if is_form:
        page = _PAGE.format(
            title="approved", body="<h1>Approved</h1><p>You can return to your terminal.</p>"
        )
        return HTMLResponse(page)
    return _json({"status": grant.status, "userCode": grant.user_code})


async def device_token(request: Request) -> Response:
    """202 while pending, 200 once with the token, 410 when expired (or already delivered)."""
    code = request.query_params.get("deviceCode")
    if not code and request.method == "POST":
        code = str((await _body(request)).get("deviceCode") or "")
    if not code:
        raise ValidationFailed("`deviceCode` is required", field="deviceCode")
    result = await device.poll(code)
    if result.status == "pending":
        return _json({"status": "authorization_pending"}, 202)
    if result.status == "expired":
        return _json({"status": "expired_token"}, 410)
    return _json({"status": "authorized", "token": result.token})


# ---------------------------------------------------------------- declarations
# Served through the REST layer's declarations, so the OpenAPI document lists them and
# their bodies and parameters are checked before a handler runs.


# OpenCrane's paths, so OpenCrane's error envelope and statuses (OIDC unset: 503).
auth_api = Dialect(
    name="auth",
    title="Sign-in",
    render_error=opencrane.render_error,
    error_schema=opencrane.opencrane.error_schema,
)
USER = record({"sub": STR, "email": STR, "name": STR})
SIGNED_IN = Resp(record({"user": USER, "csrfToken": STR}), "Signed in: the session cookie is set")
CREDENTIALS = obj({"email": STR, "password": STR, "name": STR}, required=("email", "password"))
STATUS_OK = Resp(record({"status": STR}))
SESSION = record(
    {
        "id": STR,
        "method": STR,
        "userAgent": STR,
        "ip": STR,
        "createdAt": DATETIME,
        "lastSeenAt": nullable(DATETIME),
        "expiresAt": DATETIME,
    }
)
HTML = Resp({"type": "string"}, "An HTML page", media_type="text/html")
REDIRECT = Resp(None, "A redirect")
DEVICE = record(
    {
        "deviceCode": STR,
        "userCode": STR,
        "verificationUri": STR,
        "verificationUriComplete": STR,
        "expiresIn": INT,
        "interval": INT,
    }
)
POLL = {
    200: Resp(record({"status": STR, "token": STR}), "Approved: the token, delivered once"),
    202: Resp(record({"status": STR}), "Not approved yet: poll again after `interval` seconds"),
    410: Resp(record({"status": STR}), "Expired, or already delivered"),
}


def _declare(
    method: str, path: str, fn: Callable[[Request], Awaitable[Response]], **kw: Any
) -> None:
    async def handler(call: Call) -> Response:
        return await fn(call.request)

    handler.__name__ = fn.__name__
    auth_api.route(method, path, tags=("Sign-in",), **kw)(handler)


A = "/api/v1/auth"
_declare(
    "POST",
    f"{A}/register",
    register,
    summary="Register the installation's first owner",
    description=(
        "Only while the installation has no user account. From another machine than the "
        "server's, send the platform-admin token `serve` printed on the empty database (or "
        "AGENTPLANE_ADMIN_TOKEN) as `Authorization: Bearer`."
    ),
    ok={201: SIGNED_IN},
    body=CREDENTIALS,
    public=True,
    errors=(403, 409, 429),
)
_declare(
    "POST",
    f"{A}/login",
    login,
    summary="Sign in with email and password",
    ok=SIGNED_IN,
    body=CREDENTIALS,
    public=True,
    errors=(401, 429),
)
_declare(
    "GET",
    f"{A}/login",
    oidc_login,
    summary="Start OIDC sign-in (redirects to the provider)",
    ok={302: REDIRECT},
    query=(Param("returnTo", STR),),
    public=True,
    errors=(503,),
)
_declare(
    "GET",
    f"{A}/callback",
    oidc_callback,
    summary="OIDC callback: opens a session",
    ok={302: REDIRECT},
    query=(Param("code", STR), Param("state", STR), Param("error", STR)),
    public=True,
    errors=(400, 401, 404, 503),
)
_declare("POST", f"{A}/logout", logout, summary="End this session", ok=STATUS_OK)
_declare(
    "POST",
    f"{A}/password",
    change_password,
    summary="Change your password",
    ok=STATUS_OK,
    body=obj(
        {"currentPassword": STR, "newPassword": STR}, required=("currentPassword", "newPassword")
    ),
)
_declare("GET", f"{A}/me", me, summary="Who is signed in (never 401)", ok=Resp(OBJ), public=True)
_declare("GET", f"{A}/sessions", sessions, summary="Your live sessions", ok=Resp(array(SESSION)))
_declare(
    "DELETE",
    f"{A}/sessions/{{id}}",
    revoke_session,
    summary="Revoke a session",
    ok=Resp(record({"id": STR, "status": STR})),
)
_declare(
    "POST",
    f"{A}/device",
    device_start,
    summary="Start a CLI device login (RFC 8628)",
    ok=Resp(DEVICE),
    public=True,
)
_declare(
    "GET",
    f"{A}/device/activate",
    device_activate_page,
    summary="The approval page for a device code (needs a signed-in browser)",
    ok={200: HTML, 302: REDIRECT},
    query=(Param("userCode", STR),),
    public=True,
    errors=(400, 401, 404, 409),
)
_declare(
    "POST",
    f"{A}/device/activate",
    device_activate,
    summary="Approve a device code (form with csrfToken, or JSON with X-CSRF-Token)",
    ok={
        200: Resp(
            record({"status": STR, "userCode": STR}),
            alternatives=(("text/html", {"type": "string"}),),
        )
    },
    public=True,
    errors=(400, 401, 403, 404, 409),
)
_declare(
    "GET",
    f"{A}/device/token",
    device_token,
    summary="Poll for the device login's token",
    ok=POLL,
    query=(Param("deviceCode", STR),),
    public=True,
    errors=(400, 404),
)


async def device_token_post(request: Request) -> Response:
    return await device_token(request)


_declare(
    "POST",
    f"{A}/device/token",
    device_token_post,
    summary="Poll (form of RFC 8628's POST)",
    ok=POLL,
    body=obj({"deviceCode": STR}),
    body_required=False,
    public=True,
    errors=(400, 404),
)
routes = auth_api.routes()
