"""Schemathesis in GraphQL mode against `/graphql` of a live server, with a valid token and
without: no server error, no masked INTERNAL, no undocumented code, no response the GraphQL
spec forbids. Bounded (a few examples per field) to stay near a minute; the long run's
figures are in the README."""

import os
import secrets
from pathlib import Path

import httpx

from tests.support.graphql_fuzz import fuzz, verdict
from tests.support.rest import settle_live_tasks
from tests.support.server import live_server

EXAMPLES_WITH_TOKEN = int(os.environ.get("AGENTPLANE_FUZZ_EXAMPLES", "4"))
EXAMPLES_WITHOUT = 2


def _graphql(base_url: str, token: str, query: str) -> dict[str, object]:
    response = httpx.post(
        base_url + "/graphql",
        json={"query": query},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    body = response.json()
    assert not body.get("errors"), body
    return body["data"]  # type: ignore[no-any-return]


def test_graphql_fuzzing_finds_no_fault(database_url: str, workdir: Path) -> None:
    with live_server(database_url, workdir) as server:
        # Given a tenant admin (it reaches most fields) with an agent in its tenant
        tenant = "fz-" + secrets.token_hex(4)
        _graphql(
            server.base_url,
            server.admin_token,
            f'mutation {{ createTenant(input: {{name: "{tenant}"}}) {{ tenant {{ id }} }} }}',
        )
        made = _graphql(
            server.base_url,
            server.admin_token,
            f'mutation {{ createAccessToken(input: {{name: "fz", tenant: "{tenant}", '
            'role: "tenant_admin"}) { plainTextToken } }',
        )
        token = made["createAccessToken"]["plainTextToken"]  # type: ignore[index]
        _graphql(
            server.base_url, token, 'mutation { createAgent(input: {name: "fz"}) { agent { id } } }'
        )
        url = server.base_url + "/graphql"
        # When every query and mutation is fuzzed with the token and without one
        seen, faults = fuzz(url, {"Authorization": f"Bearer {token}"}, EXAMPLES_WITH_TOKEN)
        anonymous, anonymous_faults = fuzz(url, {}, EXAMPLES_WITHOUT)
        print("graphql fuzz codes:", dict(seen), dict(anonymous))
        # Then nothing is a fault
        assert not faults and not anonymous_faults, {**faults, **anonymous_faults}
        # and the runs really reached the resolvers: answers and refusals of every kind
        assert seen.total() >= 60 * EXAMPLES_WITH_TOKEN
        assert seen["OK"] > 0 and seen["NOT_FOUND"] > 0 and seen["VALIDATION"] > 0
        assert anonymous["UNAUTHENTICATED"] > 0
        settle_live_tasks(server.base_url, server.admin_token)
        assert "Traceback" not in server.log(), server.log()


QUERY = "{ agent(id: 1) { id name } }"


async def test_the_verdict_fails_what_breaks_the_contract() -> None:
    ok = {"data": {"agent": {"id": "agt_1", "name": "a"}}}
    assert verdict(200, "application/json", ok, QUERY) is None
    not_found = {
        "data": None,
        "errors": [{"message": "x", "path": ["agent"], "extensions": {"code": "NOT_FOUND"}}],
    }
    assert verdict(200, "application/json", not_found, QUERY) is None
    internal = {"data": None, "errors": [{"message": "x", "extensions": {"code": "INTERNAL"}}]}
    assert "INTERNAL" in (verdict(200, "application/json", internal, QUERY) or "")
    uncoded = {"data": None, "errors": [{"message": "x"}]}
    assert "undocumented" in (verdict(200, "application/json", uncoded, QUERY) or "")
    assert verdict(502, "text/html", None, QUERY) == "HTTP 502"
    assert "missing" in (
        verdict(200, "application/json", {"data": {"agent": {"id": "a"}}}, QUERY) or ""
    )
    extra = {"data": {"agent": {"id": "a", "name": "n", "secret": 1}}}
    assert "not selected" in (verdict(200, "application/json", extra, QUERY) or "")
    assert "not a GraphQL response" in (
        verdict(200, "application/json", {"result": 1}, QUERY) or ""
    )
    assert verdict(200, "application/json", {"errors": []}, QUERY) is not None
    null = {
        "data": None,
        "errors": [
            {
                "message": "Cannot return null for non-nullable field Agent.id.",
                "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"},
            }
        ],
    }
    assert "non-null" in (verdict(200, "application/json", null, QUERY) or "")
