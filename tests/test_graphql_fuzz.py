"""Schemathesis in GraphQL mode against `/graphql` of a live server, with a valid token and
without: no server error, no masked INTERNAL, no undocumented code, no response the GraphQL
spec forbids. Bounded (a few examples per field) to stay near a minute; the long run's
figures are in the README."""

import json
import os
import secrets
from pathlib import Path

import httpx

from tests.support.factories import make_tenant, make_token
from tests.support.graphql import GraphQLClient
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


OVERLONG = "x" * 300
INTROSPECT = """{ __schema {
  queryType { name } mutationType { name }
  types { name kind
    fields { name type { ...T } args { name type { ...T } } }
    inputFields { name type { ...T } }
    enumValues { name } } } }
fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name } } } }"""


def _named(t: dict) -> tuple[dict, bool]:
    """The named type under wrappers, and whether the outer type is non-null."""
    required = t["kind"] == "NON_NULL"
    while t.get("ofType"):
        t = t["ofType"]
    return t, required


def _literal(t: dict, types: dict[str, dict], value: str, depth: int = 0) -> str:
    """A GraphQL literal for type `t`: every ID and String is `value`, other leaves minimal."""
    named, _ = _named(t)
    is_list = "LIST" in json_kinds(t)
    kind, name = named["kind"], named["name"]
    if kind == "SCALAR":
        literal = {"Int": "1", "Float": "1.0", "Boolean": "false", "JSON": "{}"}.get(
            name, json.dumps(value if name in ("ID", "String") else "2030-01-01T00:00:00Z")
        )
    elif kind == "ENUM":
        literal = types[name]["enumValues"][0]["name"]
    else:  # an input object: its required fields, and every ID or String among the rest
        parts = []
        for field in types[name]["inputFields"]:
            inner, required = _named(field["type"])
            if required or inner["name"] in ("ID", "String"):
                parts.append(f"{field['name']}: {_literal(field['type'], types, value, depth + 1)}")
        literal = "{" + ", ".join(parts) + "}"
    return f"[{literal}]" if is_list else literal


def json_kinds(t: dict) -> list[str]:
    kinds = []
    while t:
        kinds.append(t["kind"])
        t = t.get("ofType")
    return kinds


def _probes(schema: dict, value: str) -> list[tuple[str, str]]:
    """For every root field taking an ID or String (directly or in its input): a document
    passing `value` in all of them, and the other arguments minimal."""
    types = {t["name"]: t for t in schema["types"]}
    documents = []
    for root, keyword in ((schema["queryType"], "query"), (schema["mutationType"], "mutation")):
        for field in types[root["name"]]["fields"]:
            args = [f"{a['name']}: {_literal(a['type'], types, value)}" for a in field["args"]]
            if json.dumps(value) not in " ".join(args):
                continue
            result, _ = _named(field["type"])
            selection = " { __typename }" if result["kind"] in ("OBJECT", "INTERFACE") else ""
            call = f"{field['name']}({', '.join(args)})" if args else field["name"]
            if "first:" not in call and any(a["name"] == "first" for a in field["args"]):
                call = call.replace("(", "(first: 1, ", 1)
            documents.append((field["name"], f"{keyword} {{ {call}{selection} }}"))
    return documents


async def test_overlong_and_odd_strings_are_answers_not_faults(
    gql: GraphQLClient, client: httpx.AsyncClient
) -> None:
    """IDs and names longer than any column, and odd characters, in every argument of
    every root field: each answers with a documented code (as the fuzzer would find,
    given enough cases)."""
    admin = await make_token(None, "platform_admin")
    operator = await make_token(await make_tenant("acme"), "operator")
    schema = (await gql.ok(INTROSPECT, admin))["__schema"]
    faults = []
    for value in (OVERLONG, "\u0000\ud7ff'%_", "tok_" + OVERLONG, "usr_" + "x" * 37):
        probes = _probes(schema, value)
        assert len(probes) >= 60
        for name, document in probes:
            for token in (admin, operator):
                response = await client.post(
                    "/graphql",
                    json={"query": document},
                    headers={"Authorization": f"Bearer {token}"},
                )
                reason = verdict(
                    response.status_code,
                    response.headers["content-type"],
                    response.json(),
                    document,
                )
                if reason is not None:
                    faults.append(f"{name} ({value[:8]}…): {reason}")
    assert not faults, "\n".join(faults)
