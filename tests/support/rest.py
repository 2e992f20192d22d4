"""Helpers for REST tests: waiting for a task and reading Server-Sent Events."""

import asyncio
import secrets
import time
from typing import Any

import httpx
import orjson

from agentplane.models import Task
from tests.support.server import LiveServer


async def wait_terminal(task_id: str, timeout_s: float = 15) -> Task:
    async with asyncio.timeout(timeout_s):
        while not (task := await Task.get(id=task_id)).status.is_terminal:
            await asyncio.sleep(0.02)
    return task


def parse_sse(text: str) -> list[dict[str, Any]]:
    """Events of an SSE body: each a dict of its fields (`data` JSON-decoded when it can be)."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, Any] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        if "data" in fields:
            try:
                fields["data"] = orjson.loads(fields["data"])
            except orjson.JSONDecodeError:
                pass
        if fields:
            events.append(fields)
    return events


def settle_live_tasks(base_url: str, admin_token: str, timeout_s: float = 20) -> None:
    """Before a live server stops: cancel its unfinished tasks, so none is left queued in the
    shared database for the next test's worker to claim while that test cleans up."""

    def gql(query: str, **variables: Any) -> Any:
        response = httpx.post(
            base_url + "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {admin_token}"},
            timeout=10,
        )
        return response.json().get("data") or {}

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        page = gql("{ tasks(first: 100) { edges { node { id isTerminal } } } }")
        open_ids = [
            e["node"]["id"]
            for e in (page.get("tasks") or {}).get("edges", [])
            if not e["node"]["isTerminal"]
        ]
        if not open_ids:
            return
        for task_id in open_ids:
            gql("mutation($id: ID!) { cancelTask(input: {id: $id}) { task { id } } }", id=task_id)
    raise AssertionError("live server tasks did not settle")


def graphql(server: LiveServer, token: str, query: str, **variables: Any) -> Any:
    response = httpx.post(
        server.base_url + "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert not response.json().get("errors"), response.text
    return response.json()["data"]


def operator_token(server: LiveServer, tenant: str | None = None) -> str:
    tenant = tenant or "curl-" + secrets.token_hex(4)
    graphql(
        server,
        server.admin_token,
        "mutation($n: String!) { createTenant(input: {name: $n}) { tenant { id } } }",
        n=tenant,
    )
    return str(
        graphql(
            server,
            server.admin_token,
            'mutation($t: String!) { createAccessToken(input: {name: "curl", tenant: $t, '
            'role: "operator"}) { plainTextToken } }',
            t=tenant,
        )["createAccessToken"]["plainTextToken"]
    )


def operator_session(server: LiveServer) -> tuple[str, str, str]:
    """An operator token, and a signed-in operator of the same tenant: its Koda session
    cookie and CSRF token."""
    tenant = "curl-" + secrets.token_hex(4)
    token = operator_token(server, tenant)
    email, password = f"op@{tenant}.test", "correct horse battery"
    graphql(
        server,
        server.admin_token,
        "mutation($e: String!, $p: String!, $t: String!) { createUser(input: {email: $e, "
        'password: $p, role: "operator", tenant: $t}) { user { id } } }',
        e=email,
        p=password,
        t=tenant,
    )
    login = httpx.post(
        server.base_url + "/api/control-plane/auth/login",
        json={"identifier": email, "password": password},
        timeout=10,
    )
    assert login.status_code == 200, login.text
    return token, login.cookies["koda_operator_session"], login.json()["csrf_token"]
