"""Sending one GraphQL request over HTTP on the fast path or on Strawberry's view, to
compare their answers (tests/test_compiled.py, tests/test_compiled_mutations.py)."""

from dataclasses import dataclass

import httpx
import orjson
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.routing import Route

from agentplane.http.graphql_app import GraphQLApp

NEW = "application/graphql-response+json"
# Headers whose values both paths must give alike (the rate-limit counts move by request).
SAME_HEADERS = ("content-type", "content-length", "x-request-id", "x-ratelimit-limit")


def graphql_view(app: Starlette) -> GraphQLApp:
    return next(r.endpoint for r in app.routes if isinstance(r, Route) and r.path == "/graphql")


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    fast: bool  # answered before Strawberry's view

    def same_as(self, other: "Answer") -> None:
        assert (self.status, self.body) == (other.status, other.body)
        assert self.headers.keys() == other.headers.keys()
        for name in SAME_HEADERS:
            assert self.headers.get(name) == other.headers.get(name), name


async def send(
    client: httpx.AsyncClient,
    view: GraphQLApp,
    body: object,
    token: str | None,
    accept: str | None = None,
    *,
    fast: bool,
    authorization: str | None = None,
    cookie: str | None = None,
) -> Answer:
    headers = {"content-type": "application/json", "x-request-id": "req_compare"}
    if cookie is not None:
        headers["cookie"] = cookie
    if token is not None or authorization is not None:
        headers["authorization"] = authorization or f"Bearer {token}"
    if accept is not None:
        headers["accept"] = accept
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    fast_path = view.fast_path
    answered = sample("agentplane_graphql_fast_path_total", outcome="answered")
    if not fast:
        view.fast_path = None
    try:
        response = await client.post("/graphql", content=content, headers=headers)
    finally:
        view.fast_path = fast_path
    took = sample("agentplane_graphql_fast_path_total", outcome="answered") - answered
    return Answer(response.status_code, dict(response.headers), response.content, took == 1)
