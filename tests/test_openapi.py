"""The OpenAPI documents: generated from the route declarations, complete, valid, and
honoured by the server (schemathesis against a live server)."""

import asyncio
import os
import secrets
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.applications import Starlette
from starlette.routing import Route

from tests.support.rest import settle_live_tasks
from tests.support.server import live_server

# Served at fixed paths for other protocols; not REST-compatibility routes.
NOT_REST = {"/graphql", "/readyz", "/mcp", "/"}  # protocol endpoints, the redirect to /ui
EXAMPLES_PER_OPERATION = 20
EXAMPLES_WITH_REAL_IDS = 15


async def test_every_route_has_an_openapi_entry(app: Starlette, client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    checked = 0
    for route in app.routes:
        if not isinstance(route, Route) or route.path in NOT_REST:
            continue
        for method in sorted((route.methods or set()) - {"HEAD"}):
            assert method.lower() in paths.get(route.path, {}), (
                f"{method} {route.path} undocumented"
            )
            checked += 1
    assert checked >= 40
    documented = sum(len(item) for item in paths.values())
    assert documented == checked  # and nothing documented that is not served


async def test_documents_are_valid_openapi_31_with_real_schemas(client: httpx.AsyncClient) -> None:
    for url in ("/openapi.json", "/api/v1/openapi.json", "/openapi/control-plane.json"):
        response = await client.get(url)
        assert response.status_code == 200
        doc = response.json()
        assert doc["openapi"] == "3.1.0"
        validate(doc)
    doc = (await client.get("/openapi.json")).json()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            request = op.get("requestBody")
            if request is not None:
                # JSON, or multipart/form-data for a file upload: one media type each
                [content] = request["content"].values()
                schema = content["schema"]
                assert schema["type"] == "object"
                # Only optional bodies (e.g. `POST …/publish`) may leave their fields open.
                assert schema.get("properties") or not request["required"], f"{method} {path}"
            for status, resp in op["responses"].items():
                for media, content in resp.get("content", {}).items():
                    assert (content["schema"] and "type" in content["schema"]) or "$ref" in content[
                        "schema"
                    ], f"{method} {path} {status} {media}: empty schema"
            if not path.startswith("/openapi") and path not in ("/healthz",) and op["security"]:
                assert {"401", "403"} <= set(op["responses"]), f"{method} {path}: errors missing"


async def test_per_dialect_documents(client: httpx.AsyncClient) -> None:
    every = (await client.get("/openapi.json")).json()["paths"]
    v1 = (await client.get("/api/v1/openapi.json")).json()["paths"]
    koda = (await client.get("/openapi/control-plane.json")).json()["paths"]
    assert v1 and all(p.startswith("/api/v1/") for p in v1)
    assert set(v1) == {p for p in every if p.startswith("/api/v1/")}
    assert "/api/runtime/tasks" in koda and "/api/control-plane/agents/{agent_id}/clone" in koda
    assert all(p.startswith(("/api/runtime/", "/api/control-plane/")) for p in koda)
    assert every["/api/v1/agents/{id}/execute"]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]["required"] == ["prompt", "worker_queue_id"]


def not_an_undocumented_server_error(ctx: Any, response: Any, case: schemathesis.Case) -> None:
    """A documented 503 is the operation's contract (e.g. OIDC not configured here)."""
    if response.status_code == 503 and "503" in case.operation.definition.raw["responses"]:
        return
    not_a_server_error(ctx, response, case)


CHECKS = [
    not_an_undocumented_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _real_path(case: schemathesis.Case, real_ids: dict[str, str]) -> None:
    for name in list(case.path_parameters or {}):
        if name in real_ids:
            case.path_parameters[name] = real_ids[name]  # type: ignore[index]
            continue
        for prefix, value in real_ids.items():
            if prefix.startswith("/") and prefix in case.operation.path:
                case.path_parameters[name] = value  # type: ignore[index]
                break


def _fuzz(
    schema: Any,
    base_url: str,
    headers: dict[str, str],
    real_ids: dict[str, str] | None,
    examples: int,
) -> Counter[int]:
    """Status codes seen, by code."""
    statuses: Counter[int] = Counter()
    for result in schema.get_all_operations():
        operation = result.ok()
        if real_ids is not None and (
            operation.method.upper() == "DELETE" or "{" not in operation.path
        ):
            continue

        @given(case=operation.as_strategy())
        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],
        )
        def run(case: schemathesis.Case) -> None:
            if real_ids is not None:
                _real_path(case, real_ids)
            response = case.call_and_validate(
                base_url=base_url, headers=headers, checks=CHECKS, timeout=60
            )
            statuses[response.status_code] += 1

        run()
    return statuses


def _graphql(base_url: str, token: str, query: str, **variables: Any) -> Any:
    response = httpx.post(
        base_url + "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    body = response.json()
    assert not body.get("errors"), body
    return body["data"]


def test_schemathesis_finds_no_server_error_or_schema_violation(
    database_url: str, workdir: Path
) -> None:
    with live_server(database_url, workdir) as server:
        tenant = "st-" + secrets.token_hex(4)
        _graphql(
            server.base_url,
            server.admin_token,
            "mutation($n: String!) { createTenant(input: {name: $n}) { tenant { id } } }",
            n=tenant,
        )
        token = _graphql(
            server.base_url,
            server.admin_token,
            'mutation($t: String!) { createAccessToken(input: {name: "st", tenant: $t, '
            'role: "operator"}) { plainTextToken } }',
            t=tenant,
        )["createAccessToken"]["plainTextToken"]
        schema = schemathesis.openapi.from_url(server.base_url + "/openapi.json")
        headers = {"Authorization": f"Bearer {token}"}
        # Random path IDs mostly name nothing (404); a second pass puts real ones in them,
        # so generated bodies and queries reach the resolvers behind a found object.
        agent = _graphql(
            server.base_url,
            token,
            'mutation { createAgent(input: {name: "st-echo"}) { agent { id name } } }',
        )["createAgent"]["agent"]
        task_id = _graphql(
            server.base_url,
            token,
            'mutation($a: ID!) { submitTask(input: {agentId: $a, query: "seed"}) { task { id } } }',
            a=agent["id"],
        )["submitTask"]["task"]["id"]
        queue = httpx.post(
            server.base_url + "/api/v1/worker-queues", headers=headers, json={"name": "st"}
        )
        kb_id = _graphql(
            server.base_url,
            token,
            'mutation { createKnowledgeBase(input: {name: "st"}) { knowledgeBase { id } } }',
        )["createKnowledgeBase"]["knowledgeBase"]["id"]
        doc_id = _graphql(
            server.base_url,
            token,
            'mutation($k: ID!) { addDocument(input: {knowledgeBaseId: $k, title: "t", '
            'text: "Backups run nightly.", wait: true}) { document { id } } }',
            k=kb_id,
        )["addDocument"]["document"]["id"]
        memory_id = _graphql(
            server.base_url,
            token,
            'mutation { createMemory(input: {text: "Prefers email"}) { memory { id } } }',
        )["createMemory"]["memory"]["id"]
        real_ids = {
            "knowledge_base_id": kb_id,
            "document_id": doc_id,
            "memory_id": memory_id,
            "agent_id": agent["name"],  # Koda addresses agents by name
            "task_id": task_id,
            "/api/v1/executions/": task_id,
            "/api/v1/worker-queues/": queue.json()["id"],
            "/agents/": agent["id"],
        }
        random_ids = _fuzz(schema, server.base_url, headers, None, EXAMPLES_PER_OPERATION)
        found = _fuzz(schema, server.base_url, headers, real_ids, EXAMPLES_WITH_REAL_IDS)
        print("schemathesis statuses:", dict(random_ids), dict(found))
        assert random_ids.total() + found.total() >= 500
        # The second pass really reached found objects: many 2xx, not only 404s.
        assert sum(n for status, n in found.items() if status < 300) >= 50, found
        settle_live_tasks(server.base_url, server.admin_token)
        assert "Traceback" not in server.log(), server.log()


async def test_documents_generate_a_client_without_warnings(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """What a new user would do with the contract: feed it to a client generator."""
    generator = Path(sys.executable).parent / "openapi-python-client"
    urls = ("/openapi.json", "/api/v1/openapi.json", "/openapi/control-plane.json")
    for i, url in enumerate(urls):
        source = tmp_path / "openapi.json"
        source.write_text((await client.get(url)).text)
        out = tmp_path / f"client{i}"
        result = await asyncio.to_thread(
            subprocess.run,
            [str(generator), "generate", "--path", str(source), "--output-path", str(out)],
            capture_output=True,
            text=True,
            env={**os.environ, "PATH": f"{generator.parent}{os.pathsep}{os.environ['PATH']}"},
            timeout=120,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        assert "Warning" not in output and "will not be generated" not in output, output
        assert list(out.glob("*/api/*/*.py")), output
