"""Plumbing every REST dialect shares, written once.

A dialect declares each operation next to its handler (method, path, summary,
JSON Schemas of the request body, query parameters and responses). The same
declaration drives the router, request validation and the OpenAPI document
(see `openapi.py`), so a route cannot exist without its contract.

Handlers receive a `Call` (the caller's Actor, the validated body and query)
and return a Response; any `DomainError` they raise is rendered in the
dialect's own error envelope with the matching status code.
"""

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from sse_starlette.sse import ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agentplane.core.config import Settings
from agentplane.core.errors import DomainError, ValidationFailed, as_domain_error
from agentplane.resolvers.auth import SESSION_COOKIE, Actor, authenticate_request

log = logging.getLogger("agentplane.rest")

JSON = dict[str, Any]
SSE_HEARTBEAT_S = 15.0

# HTTP status of each domain error code, shared by the dialects.
STATUS = {
    "UNAUTHENTICATED": 401,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "VALIDATION": 400,
    "CONFLICT": 409,
    "TENANT_SUSPENDED": 403,
    "BUDGET_EXCEEDED": 402,
    "RATE_LIMITED": 429,
    "UNAVAILABLE": 503,
    "NOT_CONFIGURED": 503,  # e.g. provider keys on an installation without a secret key
    "UPSTREAM": 502,
    "DOCUMENT_TOO_LARGE": 413,
    "UNSUPPORTED_CONTENT_TYPE": 415,
    "FETCH_REFUSED": 400,
    "EGRESS_REFUSED": 400,
    "APPROVAL_REQUIRED": 409,  # a synchronous run waits for a human's decision
    "FETCH_FAILED": 502,
    "SLOW_CONSUMER": 429,  # (in an event stream's `error` event) resume from the last id
}


class MalformedRequest(ValidationFailed):
    """The body is not JSON at all: 400 in every dialect (validation may be 422)."""


class UpstreamFailed(DomainError):
    """The run behind a synchronous call failed (the model, a tool, a timeout)."""

    code = "UPSTREAM"


# ---------------------------------------------------------------- JSON Schema helpers
STR: JSON = {"type": "string"}
INT: JSON = {"type": "integer"}
NUM: JSON = {"type": "number"}
BOOL: JSON = {"type": "boolean"}
OBJ: JSON = {"type": "object"}
DATETIME: JSON = {"type": "string", "format": "date-time"}
SSE = "text/event-stream"


def nullable(schema: JSON) -> JSON:
    kind = schema.get("type")
    if kind is None:
        return {"anyOf": [schema, {"type": "null"}]}
    kinds = kind if isinstance(kind, list) else [kind]
    return {**schema, "type": [*kinds, "null"]}


def array(items: JSON) -> JSON:
    return {"type": "array", "items": items}


def obj(properties: JSON, required: tuple[str, ...] | list[str] = (), **extra: Any) -> JSON:
    schema: JSON = {"type": "object", "properties": properties, **extra}
    if required:
        schema["required"] = list(required)
    return schema


def sse_schema(
    data: JSON, events: tuple[str, ...] = (), with_id: bool = False, error: JSON | None = None
) -> JSON:
    """One Server-Sent Event: `data` carries JSON text (described by `contentSchema`).
    `error`: the dialect's error envelope, carried by a closing `error` event (no `id`)."""
    if error is not None:
        data, events = {"anyOf": [data, error]}, (*events, "error")
    properties: JSON = {
        "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": data}
    }
    required = ["data"]
    if events:
        properties["event"] = {"type": "string", "enum": list(events)}
        required.append("event")
    if with_id:
        properties["id"] = {"type": "string", "pattern": "^[0-9]+$"}
        if error is None:
            required.append("id")
    return obj(properties, required=required)


def record(properties: JSON) -> JSON:
    """A response object: every declared property is always present."""
    return obj(properties, required=list(properties))


# ---------------------------------------------------------------- declarations
@dataclass(frozen=True)
class Param:
    name: str
    schema: JSON
    required: bool = False
    description: str = ""


@dataclass(frozen=True)
class Resp:
    schema: JSON | None
    description: str = "OK"
    media_type: str = "application/json"
    # Other media types the same status may answer with, e.g. text/event-stream.
    alternatives: tuple[tuple[str, JSON], ...] = ()


@dataclass
class Call:
    request: Request
    actor: Actor | None
    body: JSON
    query: JSON
    path: dict[str, str]

    @property
    def settings(self) -> Settings:
        return self.request.app.state.settings  # type: ignore[no-any-return]


Handler = Callable[[Call], Awaitable[Response]]
ErrorRenderer = Callable[[DomainError, int], Response]
# The rate limiter plugs in here (it comes with issue 4): called before every handler with the
# caller, it answers the `X-RateLimit-*` headers to send, or raises a DomainError with code
# RATE_LIMITED (429; a `retry_after` detail becomes `Retry-After`). Until a limiter exists no
# rate-limit headers are sent rather than made-up numbers.
RateLimitHook = Callable[[Request, Actor | None], Awaitable[Mapping[str, str]]]
rate_limit_hook: RateLimitHook | None = None


@dataclass
class Operation:
    dialect: "Dialect"
    method: str
    path: str
    handler: Handler
    summary: str
    responses: dict[int, Resp]
    body: JSON | None = None
    body_required: bool = True
    # multipart/form-data: `body` documents the form; the handler reads `call.request.form()`.
    body_media_type: str = "application/json"
    query: tuple[Param, ...] = ()
    public: bool = False
    errors: tuple[int, ...] = ()
    description: str = ""
    tags: tuple[str, ...] = ()
    fields: Mapping[str, str] = field(default_factory=dict)
    _validator: Draft202012Validator | None = field(default=None, repr=False)

    @property
    def operation_id(self) -> str:
        return f"{self.dialect.name}_{self.handler.__name__}"

    @property
    def path_params(self) -> list[str]:
        return [seg[1:-1] for seg in self.path.split("/") if seg.startswith("{")]

    def error_statuses(self) -> list[int]:
        statuses = set(self.errors)
        if not self.public:
            statuses |= {400, 401, 403, 404, 429, self.dialect.validation_status}
        if self.body is not None or self.query:
            statuses |= {400, self.dialect.validation_status}
        if self.path_params:
            statuses.add(404)
        if self.method in ("POST", "PUT", "PATCH") and not self.public:
            statuses.add(409)
        return sorted(statuses - set(self.responses))

    async def handle(self, request: Request) -> Response:
        dialect = self.dialect
        actor: Actor | None = None
        headers: dict[str, str] = {}
        try:
            if not self.public:
                actor = await request_actor(request, dialect.cookie)
            if rate_limit_hook is not None:
                headers.update(await rate_limit_hook(request, actor))
            path = dict(request.path_params)
            for value in path.values():
                _reject_nul(value, "path")
            call = Call(request, actor, await self._body(request), self._query(request), path)
            response = await self.handler(call)
        except DomainError as exc:
            response = dialect.render(renamed(exc, {**dialect.fields, **self.fields}))
            if "retry_after" in exc.details:
                headers["Retry-After"] = str(exc.details["retry_after"])
        except Exception as exc:  # never a stack trace on the wire
            mapped = as_domain_error(exc)
            if mapped is not None:  # bad input a library refused (e.g. an overlong ID)
                response = dialect.render(mapped)
            else:
                log.exception("unexpected error in %s %s", self.method, self.path)
                response = dialect.render(DomainError("Internal server error"), 500)
        if dialect.rate_limit_headers or "Retry-After" in headers:
            response.headers.update(headers)
        return response

    async def _body(self, request: Request) -> JSON:
        if self.body is None or self.body_media_type != "application/json":
            return {}
        raw = await request.body()
        if not raw.strip() and not self.body_required:
            return {}
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise MalformedRequest("Request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise MalformedRequest("Request body must be a JSON object")
        _reject_nul(body, "body")
        if self._validator is None:
            self._validator = Draft202012Validator(self.body)
        error = next(iter(self._validator.iter_errors(body)), None)
        if error is not None:
            where = ".".join(str(p) for p in error.absolute_path)
            message = f"{where}: {error.message}" if where else error.message
            raise ValidationFailed(message, field=where or None)
        return body

    def _query(self, request: Request) -> JSON:
        values: JSON = {}
        for param in self.query:
            raw = request.query_params.get(param.name)
            if raw is None:
                if param.required:
                    raise ValidationFailed(f"`{param.name}` is required", field=param.name)
                if "default" in param.schema:
                    values[param.name] = param.schema["default"]
                continue
            _reject_nul(raw, param.name)
            value = _coerce(param, raw)
            error = next(iter(Draft202012Validator(param.schema).iter_errors(value)), None)
            if error is not None:
                raise ValidationFailed(f"`{param.name}`: {error.message}", field=param.name)
            values[param.name] = value
        return values


def renamed(exc: DomainError, names: Mapping[str, str]) -> DomainError:
    """The error as the caller wrote its request: resolvers name inputs as GraphQL does
    (`model`, `after`), a dialect's caller sent `model_id` or `cursor`."""
    old = exc.details.get("field")
    new = names.get(old) if isinstance(old, str) else None
    if new is None:
        return exc
    copy = type(exc)(exc.message.replace(f"`{old}`", f"`{new}`"), **exc.details)
    copy.details["field"] = new
    return copy


def _coerce(param: Param, raw: str) -> Any:
    kind = param.schema.get("type")
    if kind == "integer":
        try:
            return int(raw)
        except ValueError:
            raise ValidationFailed(f"`{param.name}` must be an integer", field=param.name) from None
    if kind == "boolean":
        if raw.lower() in ("true", "1"):
            return True
        if raw.lower() in ("false", "0"):
            return False
        raise ValidationFailed(f"`{param.name}` must be true or false", field=param.name)
    return raw


def _reject_nul(value: Any, where: str) -> None:
    """NUL characters cannot be stored (PostgreSQL text) and are never meaningful."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValidationFailed(f"NUL character in {where}", field=where)
    elif isinstance(value, dict):
        for key, item in value.items():
            _reject_nul(key, where)
            _reject_nul(item, where)
    elif isinstance(value, list):
        for item in value:
            _reject_nul(item, where)


@dataclass
class Dialect:
    """One documented control plane: its error envelope, status codes and operations."""

    name: str
    title: str
    render_error: ErrorRenderer
    error_schema: JSON
    validation_status: int = 400
    cookie: str | None = None  # the dialect's own session cookie (set by its login)
    rate_limit_headers: bool = False
    # The dialect's names for the resolvers' (GraphQL's) input fields, for errors' `field`.
    fields: Mapping[str, str] = field(default_factory=dict)
    operations: list[Operation] = field(default_factory=list)

    def status_of(self, exc: DomainError) -> int:
        if isinstance(exc, MalformedRequest):
            return 400
        if exc.code == "VALIDATION":
            return self.validation_status
        return STATUS.get(exc.code, 500)

    def render(self, exc: DomainError, status: int | None = None) -> Response:
        return self.render_error(exc, status or self.status_of(exc))

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        ok: Resp | dict[int, Resp],
        body: JSON | None = None,
        body_required: bool = True,
        body_media_type: str = "application/json",
        query: tuple[Param, ...] | list[Param] = (),
        public: bool = False,
        errors: tuple[int, ...] = (),
        description: str = "",
        tags: tuple[str, ...] = (),
        fields: Mapping[str, str] | None = None,
    ) -> Callable[[Handler], Handler]:
        """`fields`: this route's names for resolver fields, over the dialect's."""

        def register(handler: Handler) -> Handler:
            self.operations.append(
                Operation(
                    dialect=self,
                    method=method,
                    path=path,
                    handler=handler,
                    summary=summary,
                    responses=ok if isinstance(ok, dict) else {200: ok},
                    body=body,
                    body_required=body_required,
                    body_media_type=body_media_type,
                    query=tuple(query),
                    public=public,
                    errors=errors,
                    description=description,
                    tags=tags or (self.title,),
                    fields=fields or {},
                )
            )
            return handler

        return register

    def routes(self) -> list[Route]:
        return [
            Route(op.path, op.handle, methods=[op.method], name=op.operation_id)
            for op in self.operations
        ]


# ---------------------------------------------------------------- auth and responses
async def request_actor(request: Request, cookie: str | None = None) -> Actor | None:
    """The caller, from `Authorization: Bearer` or a session cookie: agentplane's own, or
    the dialect's (Koda's `koda_operator_session`, set by its login). A dialect with its
    own session also takes a session's secret as a bearer, as Koda's dashboard sends it.
    Cookie-authenticated writes need `X-CSRF-Token` (see `auth.authenticate_request`)."""
    settings: Settings = request.app.state.settings
    cookies = (cookie, SESSION_COOKIE) if cookie is not None else (SESSION_COOKIE,)
    return await authenticate_request(
        request.method,
        request.headers,
        request.cookies,
        settings.admin_token,
        session_cookies=cookies,
        session_bearer=cookie is not None,
    )


def json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(data), status_code=status, media_type="application/json", headers=headers
    )


def no_content() -> Response:
    return Response(status_code=204)


def iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def sse_event(
    data: Any, *, event: str | None = None, id: int | str | None = None
) -> ServerSentEvent:
    return ServerSentEvent(
        data=orjson.dumps(data).decode(), event=event, id=None if id is None else str(id)
    )


def sse_text(event: ServerSentEvent) -> str:
    """The event as written to an event stream."""
    return event.encode().decode()


def last_event_id(request: Request, query_value: int | None) -> int | None:
    """The resume cursor: `Last-Event-ID` (what EventSource sends on reconnect) wins."""
    header = request.headers.get("last-event-id")
    if header is None or not header.strip():
        return query_value
    try:
        value = int(header)
    except ValueError:
        raise ValidationFailed(
            "`Last-Event-ID` must be an integer seq", field="Last-Event-ID"
        ) from None
    if value < 0:
        raise ValidationFailed("`Last-Event-ID` must not be negative", field="Last-Event-ID")
    return value


def parse_datetime(value: str | None, field: str) -> datetime | None:
    """An ISO 8601 date-time with its offset; a malformed or naive one fails validation
    (JSON Schema's `format` is only an annotation here)."""
    if value is None:
        return None
    try:
        parsed: datetime | None = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise ValidationFailed(
            f"`{field}` must be an ISO 8601 date-time with an offset, e.g. 2030-01-01T00:00:00Z",
            field=field,
        )
    return parsed


def limit_offset(default: int = 50, maximum: int = 100) -> tuple[Param, Param]:
    return (
        Param("limit", {"type": "integer", "minimum": 1, "maximum": maximum, "default": default}),
        Param("offset", {"type": "integer", "minimum": 0, "maximum": 10**9, "default": 0}),
    )


__all__ = [
    "JSON",
    "Call",
    "Dialect",
    "MalformedRequest",
    "Param",
    "Resp",
    "iso",
    "json",
    "no_content",
    "request_actor",
    "sse_event",
]
