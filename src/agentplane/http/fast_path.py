"""The HTTP fast path: a compiled query or mutation answered before Strawberry's view.

For a bearer-authenticated `POST /graphql` whose JSON body names an operation the
compiled plans cover (schema/compiled.py), the answer is: cached document text → plan →
its statements → bytes. It has the general path's effects, taken from the same functions:
the token's Actor (`authenticate_request`, token cache included), the cost estimate
and its limits and the cost charge (schema/cost.py), the operation's metrics and span
(schema/telemetry.py), error rendering with stable codes and `extensions.requestId`
(schema/errors.py) and the same body and content negotiation (http/graphql_app.py).
The rate limit, request id, HTTP metrics and access log are the middleware's, as for
any request.

Anything it does not recognise, or any condition it is unsure of (another content
type, a body key it does not know, a syntax, validation or variable error, a refused
credential, a cost over a limit, a plan that cannot answer), goes to the general
path, which then produces the answer and the error. What the fast path already did
is handed over so that it happens once: the credential's outcome (`request.state`)
and a cost already charged (`middleware.precharged`). A mutation never falls through
once it started: it is answered here, errors included, and audited as the general path
audits it (schema/audit_extension.py).
"""

from typing import Any

import orjson
from starlette.requests import Request
from strawberry.schema import BaseSchema

from agentplane.core import observability as obs
from agentplane.core.config import Settings
from agentplane.core.errors import DomainError
from agentplane.http.middleware import precharged
from agentplane.resolvers.auth import authenticate_request
from agentplane.schema import compiled, cost
from agentplane.schema.audit_extension import collecting_records, record_unaudited, root_fields
from agentplane.schema.context import Context
from agentplane.schema.errors import log_errors, render_error
from agentplane.schema.telemetry import operation_finished, operation_started

ANSWERED = obs.FAST_PATH.labels("answered")
HANDED_OVER = obs.FAST_PATH.labels("general")
BODY_KEYS = frozenset({"query", "operationName", "variables"})
# The credential the fast path checked, for the general path when it falls through.
FAST_PATH_AUTH = "fast_path_auth"


def _json_content(content_type: str | None) -> bool:
    if not content_type:
        return False
    return content_type.partition(";")[0].strip().lower() == "application/json"


class FastPath:
    def __init__(self, schema: BaseSchema, settings: Settings) -> None:
        self.schema = schema._schema  # type: ignore[attr-defined]
        self.production = settings.production
        self.admin_token = settings.admin_token

    async def answer(self, request: Request) -> dict[str, Any] | None:
        """The response body of a compiled query; None: the general path answers."""
        body = await self._answer(request)
        (HANDED_OVER if body is None else ANSWERED).inc()
        return body

    async def _answer(self, request: Request) -> dict[str, Any] | None:
        headers = request.headers
        accept = (headers.get("accept") or "").lower()
        if (
            request.method != "POST"
            or not headers.get("authorization")  # cookies (and CSRF), anonymous: general
            or not _json_content(headers.get("content-type"))
            or "multipart" in accept  # a streaming transport (Strawberry's)
            or "event-stream" in accept
        ):
            return None
        try:
            data = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return None
        if not isinstance(data, dict) or not data.keys() <= BODY_KEYS:
            return None
        query, name, variables = data.get("query"), data.get("operationName"), data.get("variables")
        if (
            not isinstance(query, str)
            or not isinstance(name, str | None)
            or not isinstance(variables, dict | None)
        ):
            return None
        ready = compiled.ready_plan(self.schema, query, name, self.production)
        if ready is None:
            return None
        coerced = compiled.coerce_variables(self.schema, ready.plan, variables)
        if coerced is None:
            return None
        # A bearer credential: no session cookie is read and no CSRF token is needed
        # (graphql_needs_csrf), as on the general path.
        context = Context(request=request)
        try:
            context.set_actor(
                await authenticate_request("POST", headers, {}, self.admin_token, csrf_exempt=True)
            )
        except DomainError as exc:
            setattr(request.state, FAST_PATH_AUTH, (None, exc))  # the general path reports it
            return None
        setattr(request.state, FAST_PATH_AUTH, (context.actor, None))
        # Falling through after this leaves the span unended: it is never exported.
        started = operation_started()
        estimate, limit_errors = ready.fixed_cost or cost.estimate(
            self.schema, ready.plan.operation, ready.fragments, variables
        )
        if limit_errors:
            return None
        try:
            context.rate_limit = await cost.charge(context.actor, estimate)
        except DomainError:  # refused, taking nothing: the general path refuses again
            return None
        plan = ready.plan
        if plan.mutation:
            with collecting_records() as collected:
                result, errors = await compiled.execute_mutation(
                    self.schema, plan, context, coerced
                )
            if not collected:
                await record_unaudited(context.actor, root_fields(plan.operation), errors)
        else:
            try:
                result, errors = await compiled.execute_plan(self.schema, plan, context, coerced)
            except Exception:
                # The general path answers, without charging again; its own plan run counts
                # the fallback (compiled.CompiledQueries), so it is not counted here.
                precharged.set(context.rate_limit)
                return None
        compiled.COMPILED_HIT.inc()
        if errors:
            log_errors(errors)  # as Schema.process_errors
        kind = plan.operation.operation.value
        operation_finished(started, kind, ready.operation_name, bool(errors))
        if not errors:
            return {"data": result}
        rendered = [render_error(e, self.production) for e in errors]
        if result is None and all(e.path is None for e in rendered):
            # Read as a request error, as GraphQLApp.process_result reads it.
            request.state.request_error = request.state.graphql_response
            return {"errors": [e.formatted for e in rendered]}
        return {"data": result, "errors": [e.formatted for e in rendered]}
