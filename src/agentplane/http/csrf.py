"""Which GraphQL requests need the CSRF token: cookie-authenticated POSTs that carry a
mutation. (Queries change nothing, and a cross-site page cannot read their answers.)"""

from typing import Any

import orjson
from graphql import GraphQLError, OperationDefinitionNode, OperationType, parse
from starlette.requests import Request

from agentplane.resolvers.auth import SESSION_COOKIE


def _is_mutation(payload: Any) -> bool:
    if isinstance(payload, list):
        return any(_is_mutation(p) for p in payload)
    if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
        return False
    try:
        document = parse(payload["query"])
    except GraphQLError:
        return False  # not executable either: the GraphQL layer reports the syntax error
    name = payload.get("operationName")
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = [o for o in operations if name is None or (o.name and o.name.value == name)]
    return any(o.operation == OperationType.MUTATION for o in chosen)


async def graphql_needs_csrf(request: Request) -> bool:
    if request.method != "POST" or request.headers.get("authorization"):
        return False
    if SESSION_COOKIE not in request.cookies:
        return False
    if not request.headers.get("content-type", "").startswith("application/json"):
        return True  # forms and multipart: the shapes a cross-site page can send; always check
    try:
        return _is_mutation(orjson.loads(await request.body()))
    except orjson.JSONDecodeError:
        return False
