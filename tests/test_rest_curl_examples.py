"""The seed documents' curl examples, run with curl against a live server: verbatim apart
from the host and the credentials (and the IDs the examples leave as placeholders)."""

import json
import shlex
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.rest import (
    graphql,
    operator_session,
    operator_token,
    parse_sse,
    settle_live_tasks,
)
from tests.support.server import LiveServer, live_server

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")

KODA_SUBMIT = """curl -X POST https://koda.example.com/api/runtime/tasks \\
-H "Cookie: koda_operator_session=..." \\
-H "Content-Type: application/json" \\
-d '{
"agent_id": "atlas",
"query": "Audit the auth service for CSP violations.",
"metadata": { "source": "operator" }
}'"""
KODA_READY = "curl https://koda.example.com/api/runtime/ready"
KUBIYA_MODELS = """curl -X GET "https://control-plane.kubiya.ai/api/v1/models?enabled_only=true" \\
  -H "Authorization: Bearer YOUR_API_KEY\""""
KUBIYA_CREATE = """curl -X POST https://control-plane.kubiya.ai/api/v1/agents \\
  -H "Authorization: Bearer YOUR_API_KEY" \\
  -H "Content-Type: application/json" \\
  -d '{
    "name": "DevOps Assistant",
    "description": "Helps with infrastructure and deployment tasks",
    "runtime": "claude_code",
    "model_id": "anthropic/claude-sonnet-4-5",
    "system_prompt": "You are a helpful DevOps assistant"
  }'"""
KUBIYA_EXECUTE = """curl -X POST https://control-plane.kubiya.ai/api/v1/agents/{agent_id}/execute \\
  -H "Authorization: Bearer YOUR_API_KEY" \\
  -H "Content-Type: application/json" \\
  -d '{
    "prompt": "Check the status of pods in the production namespace",
    "worker_queue_id": "your-worker-queue-id",
    "stream": true
  }'"""


def curl(example: str, server: LiveServer, **substitutions: str) -> tuple[int, str]:
    """Run a documented example with curl: only hosts, credentials and placeholders change."""
    command = example.replace("https://koda.example.com", server.base_url).replace(
        "https://control-plane.kubiya.ai", server.base_url
    )
    for old, new in substitutions.items():
        command = command.replace(old, new)
    argv = shlex.split(command.replace("\\\n", " "))
    argv[1:1] = ["-sS", "-w", "\\n%{http_code}", "--max-time", "30"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    body, _, status = result.stdout.rpartition("\n")
    return int(status), body


def test_koda_runtime_examples(database_url: str, workdir: Path) -> None:
    with live_server(database_url, workdir) as server:
        token, session, csrf = operator_session(server)
        graphql(server, token, 'mutation { createAgent(input: {name: "atlas"}) { agent { id } } }')
        status, body = curl(KODA_READY, server)
        assert status == 200 and json.loads(body)["status"] == "ready"
        # The credentials: the session cookie Koda's login set, and its CSRF token.
        credentials = f'koda_operator_session={session}" -H "X-CSRF-Token: {csrf}'
        status, body = curl(KODA_SUBMIT, server, **{"koda_operator_session=...": credentials})
        assert status == 202, body
        task = json.loads(body)
        assert set(task) == {
            "id",
            "agent_id",
            "status",
            "created_at",
            "updated_at",
            "metadata",
            "output",
        }
        assert (task["agent_id"], task["metadata"]) == ("atlas", {"source": "operator"})
        events = httpx.get(
            f"{server.base_url}/api/runtime/tasks/{task['id']}/events",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert parse_sse(events.text)[-1]["data"]["payload"]["to"] == "completed"
        done = httpx.get(
            f"{server.base_url}/api/runtime/tasks/{task['id']}",
            headers={"Authorization": f"Bearer {token}"},
        ).json()
        assert done["output"] == "Audit the auth service for CSP violations."
        settle_live_tasks(server.base_url, server.admin_token)


def test_kubiya_examples(database_url: str, workdir: Path) -> None:
    with live_server(database_url, workdir) as server:
        token = operator_token(server)
        key = {"YOUR_API_KEY": token}
        status, body = curl(KUBIYA_MODELS, server, **key)
        assert status == 200 and json.loads(body)["total"] >= 1
        status, body = curl(KUBIYA_CREATE, server, **key)
        assert status == 201, body
        assert json.loads(body)["model_id"] == "anthropic/claude-sonnet-4-5"

        # The execute example on an agent whose model runs offline, and a real queue.
        echo = graphql(
            server, token, 'mutation { createAgent(input: {name: "e"}) { agent { id } } }'
        )
        queue = httpx.post(
            server.base_url + "/api/v1/worker-queues",
            headers={"Authorization": f"Bearer {token}"},
            json={"name": "default"},
        ).json()
        status, body = curl(
            KUBIYA_EXECUTE,
            server,
            **key,
            **{
                "{agent_id}": echo["createAgent"]["agent"]["id"],
                "your-worker-queue-id": queue["id"],
            },
        )
        assert status == 200, body
        events = parse_sse(body)
        assert events[0]["event"] == "step" and events[-1]["event"] == "done"
        assert (
            events[-1]["data"]["response"] == "Check the status of pods in the production namespace"
        )
        settle_live_tasks(server.base_url, server.admin_token)
        assert "Traceback" not in server.log()


def test_event_stream_client_can_leave_and_resume(database_url: str, workdir: Path) -> None:
    """Over real HTTP, with no worker (the task stays queued): a client reads the replay,
    hangs up, and a reconnect with Last-Event-ID resumes; the server logs no error."""
    with live_server(database_url, workdir, "--no-worker") as server:
        token = operator_token(server)
        agent = graphql(
            server, token, 'mutation { createAgent(input: {name: "w"}) { agent { id } } }'
        )["createAgent"]["agent"]
        task = graphql(
            server,
            token,
            'mutation($a: ID!) { submitTask(input: {agentId: $a, query: "q"}) { task { id } } }',
            a=agent["id"],
        )["submitTask"]["task"]
        url = f"{server.base_url}/api/runtime/tasks/{task['id']}/events"
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.stream("GET", url, headers=headers, timeout=10) as response:
            assert response.status_code == 200
            first = next(response.iter_lines())
        assert first == "id: 1"
        with httpx.stream(
            "GET", url, headers={**headers, "Last-Event-ID": "1"}, timeout=2
        ) as resumed:
            assert resumed.status_code == 200
            with pytest.raises(httpx.ReadTimeout):  # nothing after seq 1 yet: it waits
                next(resumed.iter_lines())
        graphql(
            server,
            token,
            "mutation($id: ID!) { cancelTask(input: {id: $id}) { task { status } } }",
            id=task["id"],
        )
        ended = httpx.get(url, headers={**headers, "Last-Event-ID": "1"}, timeout=10)
        steps = parse_sse(ended.text)
        assert [s["data"]["payload"]["to"] for s in steps] == ["cancelled"]
        assert httpx.get(server.base_url + "/healthz").status_code == 200
        assert "Traceback" not in server.log() and "ERROR" not in server.log(), server.log()
