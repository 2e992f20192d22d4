"""The core slice over HTTP: tenant, token, agent, task, trace."""

import asyncio

from tests.support.factories import make_agent, make_tenant, make_token
from tests.support.graphql import GraphQLClient, error_codes

WAIT_TASK = """
query($id: ID!) { task(id: $id) { id status isTerminal output costUsd
  steps { seq kind model inputTokens outputTokens costUsd payload } } }
"""


async def wait_terminal(gql: GraphQLClient, token: str, task_id: str) -> dict:
    for _ in range(200):
        task = (await gql.ok(WAIT_TASK, token, id=task_id))["task"]
        if task["isTerminal"]:
            return task
        await asyncio.sleep(0.05)
    raise AssertionError(f"task {task_id} did not finish: {task}")


async def test_first_session_through_graphql(gql: GraphQLClient) -> None:
    # given a platform admin
    admin = await make_token(None, "platform_admin")
    # when they create a tenant, a tenant token, an agent, and submit a task
    created = await gql.ok(
        'mutation { createTenant(input: {name: "acme", displayName: "Acme", email: "ops@acme.io",'
        ' team: "ops"}) { tenant { id name displayName email team phase } } }',
        admin,
    )
    tenant = created["createTenant"]["tenant"]
    assert tenant["id"].startswith("ten_")
    assert tenant == {**tenant, "name": "acme", "displayName": "Acme", "phase": "ACTIVE"}

    minted = await gql.ok(
        'mutation { createAccessToken(input: {name: "ci", tenant: "acme", role: "operator"})'
        " { token { id role prefix } plainTextToken } }",
        admin,
    )
    operator = minted["createAccessToken"]["plainTextToken"]
    assert operator.startswith("agp_")
    assert minted["createAccessToken"]["token"]["role"] == "operator"
    assert operator.startswith(minted["createAccessToken"]["token"]["prefix"])

    viewer = await gql.ok("{ viewer { kind role tenant { name } } }", operator)
    assert viewer["viewer"] == {"kind": "token", "role": "operator", "tenant": {"name": "acme"}}

    agent = (
        await gql.ok(
            'mutation { createAgent(input: {name: "echo", model: "scripted/echo",'
            ' systemPrompt: "Be brief."}) { agent { id name model systemPrompt state } } }',
            operator,
        )
    )["createAgent"]["agent"]
    assert agent["id"].startswith("agt_") and agent["state"] == "ACTIVE"

    submitted = await gql.ok(
        'mutation($a: ID!) { submitTask(input: {agentId: $a, query: "hello agent world",'
        ' metadata: {source: "test"}}) { task { id status isTerminal metadata agent { id } } } }',
        operator,
        a=agent["id"],
    )
    task = submitted["submitTask"]["task"]
    assert task["status"] == "QUEUED" and task["isTerminal"] is False
    assert task["metadata"] == {"source": "test"} and task["agent"]["id"] == agent["id"]

    # then the worker completes it with a gapless trace
    done = await wait_terminal(gql, operator, task["id"])
    assert done["status"] == "COMPLETED"
    assert done["output"] == "hello agent world"
    kinds = [(s["seq"], s["kind"]) for s in done["steps"]]
    assert kinds == [
        (1, "STATUS_CHANGE"),
        (2, "STATUS_CHANGE"),
        (3, "PROVIDER_CALL"),
        (4, "STATUS_CHANGE"),
    ]
    call = done["steps"][2]
    assert call["model"] == "scripted/echo"
    # system prompt (2 tokens + '.') and query (3 tokens) in, the echoed 3 tokens out
    assert (call["inputTokens"], call["outputTokens"]) == (6, 3)
    assert call["costUsd"] > 0
    assert done["costUsd"] == call["costUsd"]
    assert [s["payload"].get("to") for s in done["steps"] if s["kind"] == "STATUS_CHANGE"] == [
        "queued",
        "running",
        "completed",
    ]


async def test_unauthenticated_and_bad_token(gql: GraphQLClient) -> None:
    body = await gql("{ agents(first: 10) { edges { node { id } } } }")
    assert error_codes(body) == ["UNAUTHENTICATED"]
    body = await gql("{ agents(first: 10) { edges { node { id } } } }", "agp_not-a-real-token")
    assert error_codes(body) == ["UNAUTHENTICATED"]


async def test_validation_errors_have_codes(gql: GraphQLClient) -> None:
    tenant = await make_tenant("acme")
    token = await make_token(tenant, "tenant_admin")
    body = await gql(
        'mutation { createAgent(input: {name: "x", model: "nope/nope"}) { agent { id } } }', token
    )
    assert error_codes(body) == ["VALIDATION"]
    await make_agent(tenant, "dup")
    body = await gql('mutation { createAgent(input: {name: "dup"}) { agent { id } } }', token)
    assert error_codes(body) == ["CONFLICT"]
    body = await gql("{ nope }", token)
    assert error_codes(body) == ["GRAPHQL_VALIDATION_FAILED"]
