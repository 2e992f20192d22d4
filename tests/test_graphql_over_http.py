"""GraphQL over HTTP (the graphql-http audits' SHOULDs): `application/graphql-response+json`
when the Accept header asks for it, 4xx for request errors and 200 for execution errors."""

import httpx
import pytest

from agentplane.http.accept import wants_graphql_response_json
from tests.support.factories import make_agent, make_tenant, make_token

NEW = "application/graphql-response+json"
TASKS = "{ tasks(first: 1) { edges { node { id } } } }"


async def post(
    client: httpx.AsyncClient, body: object, accept: str, token: str = ""
) -> httpx.Response:
    headers = {"accept": accept}
    if token:
        headers["authorization"] = f"Bearer {token}"
    return await client.post("/graphql", json=body, headers=headers)


@pytest.mark.parametrize(
    ("accept", "wanted"),
    [
        (None, False),
        ("*/*", False),
        ("application/json", False),
        (NEW, True),
        (f"{NEW}, application/json", True),
        (f"application/json, {NEW};q=0.9", False),
        (f"{NEW};q=0.9, application/json;q=0.5", True),
        (f"{NEW};q=0", False),
    ],
)
def test_negotiation(accept: str | None, wanted: bool) -> None:
    assert wants_graphql_response_json(accept) is wanted


async def test_success_uses_the_accepted_media_type(client: httpx.AsyncClient) -> None:
    new = await post(client, {"query": "{ __typename }"}, f"{NEW}, application/json")
    assert new.status_code == 200
    assert new.headers["content-type"].startswith(NEW)
    assert new.json() == {"data": {"__typename": "Query"}}
    legacy = await post(client, {"query": "{ __typename }"}, "application/json")
    assert legacy.headers["content-type"].startswith("application/json")
    get = await client.get("/graphql", params={"query": "{ __typename }"}, headers={"accept": NEW})
    assert get.status_code == 200 and get.headers["content-type"].startswith(NEW)


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("{", "GRAPHQL_PARSE_FAILED"),
        ("{ nope }", "GRAPHQL_VALIDATION_FAILED"),
    ],
)
async def test_request_errors_are_400_without_data(
    client: httpx.AsyncClient, query: str, code: str
) -> None:
    new = await post(client, {"query": query}, NEW)
    assert new.status_code == 400, new.text
    assert new.headers["content-type"].startswith(NEW)
    body = new.json()
    assert "data" not in body
    assert body["errors"][0]["extensions"]["code"] == code
    # Under application/json the same error answers 200 (the legacy behaviour).
    legacy = await post(client, {"query": query}, "application/json")
    assert legacy.status_code == 200
    assert legacy.headers["content-type"].startswith("application/json")
    assert legacy.json()["errors"][0]["extensions"]["code"] == code


async def test_variable_coercion_failure_is_a_request_error(client: httpx.AsyncClient) -> None:
    query = "query($s: TaskStatus) { tasks(first: 1, status: $s) { edges { node { id } } } }"
    response = await post(client, {"query": query, "variables": {"s": "NOT_A_STATUS"}}, NEW)
    assert response.status_code == 400, response.text
    assert "data" not in response.json()


async def test_malformed_requests_are_4xx_in_the_new_type(client: httpx.AsyncClient) -> None:
    no_query = await post(client, {"foo": 1}, NEW)
    assert no_query.status_code == 400
    assert no_query.headers["content-type"].startswith(NEW)
    assert "data" not in no_query.json()
    bad_json = await client.post(
        "/graphql", content=b"{bad", headers={"accept": NEW, "content-type": "application/json"}
    )
    assert bad_json.status_code == 400
    assert bad_json.headers["content-type"].startswith(NEW)


async def test_execution_errors_stay_200_with_data(client: httpx.AsyncClient) -> None:
    # No token: the field resolver refuses; execution started, so `data` is present.
    response = await post(client, {"query": TASKS}, NEW)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "data" in body and body["data"] is None
    assert body["errors"][0]["path"] == ["tasks"]


async def test_an_authorised_read_in_the_new_type(client: httpx.AsyncClient) -> None:
    tenant = await make_tenant("acme")
    await make_agent(tenant)
    token = await make_token(tenant, "operator")
    response = await post(client, {"query": TASKS}, NEW, token)
    assert response.status_code == 200
    assert response.json() == {"data": {"tasks": {"edges": []}}}
