"""Where a page-of-50 request spends its time: py-spy samples the real server under wrk.

    BENCH_DATABASE_URL=postgres://... .venv/bin/python -m bench.profile_page

Prints the share of samples by the innermost part of the request they were in
(e.g. a sample in pypika under `list_tasks` counts for pypika, not for list_tasks).
"""

import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from bench.run import PAGE_QUERY, UNLIMITED, isolated, prepare, uvicorn_process, wrk

PARTS = {
    "token lookup (auth.authenticate)": "authenticate (agentplane/resolvers/auth.py",
    "tasks page (resolvers.tasks.list_tasks)": "list_tasks (agentplane/resolvers/tasks.py",
    "agents batch (resolvers.agents.load_agents)": "load_agents (agentplane/resolvers/agents.py",
    "Tortoise: building SQL (pypika)": "(pypika_tortoise/",
    "Tortoise: rows to models (_init_from_db)": "_init_from_db (tortoise/",
    "Tortoise: querysets, executor": "(tortoise/",
    "asyncpg (driver)": "(asyncpg/",
    "compiled plan (schema/compiled.py _complete)": "_complete (agentplane/schema/compiled.py",
    "graphql-core executor": "(graphql/",
    "Strawberry HTTP view + extensions": "(strawberry/",
    "Starlette + middleware": "(starlette/",
    "uvicorn / HTTP parsing": "(uvicorn/",
    "JSON encoding (orjson)": "encode_json",
    "HTTP fast path (http/fast_path.py)": "agentplane/http/fast_path.py",
    "rate limit (limits, middleware)": "(limits/",
    "metrics (prometheus_client)": "(prometheus_client/",
    "metrics, request id, access log": "agentplane/http/observability.py",
    "cost estimate and charge": "agentplane/schema/cost.py",
    "asyncio event loop": "(asyncio/",
}


def main() -> None:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        raise SystemExit("bench.profile_page needs py-spy: .venv/bin/pip install py-spy")
    url = os.environ["BENCH_DATABASE_URL"]
    seed = isolated(prepare, url, 60)
    env = {
        "AGENTPLANE_DATABASE_URL": url,
        "AGENTPLANE_REDIS_URL": "",
        "AGENTPLANE_RATE_LIMIT_PER_MIN": UNLIMITED,
    }
    body = json.dumps({"query": PAGE_QUERY})
    out = Path(tempfile.mkdtemp()) / "page.txt"
    with uvicorn_process("bench.app_factory:api", env) as app:
        wrk(app + "/graphql", seconds=1, connections=10, body=body, token=seed["token"])
        pid = _server_pid(app)
        load = threading.Thread(
            target=wrk,
            args=(app + "/graphql",),
            kwargs={"seconds": 8, "connections": 10, "body": body, "token": seed["token"]},
        )
        load.start()
        subprocess.run(
            [
                py_spy,
                "record",
                "--pid",
                str(pid),
                "--duration",
                "6",
                "--rate",
                "250",
                "--format",
                "raw",
                "--output",
                str(out),
                "--nonblocking",
            ],
            check=True,
            capture_output=True,
        )
        load.join()
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in out.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        samples = int(n)
        total += samples
        # the innermost match wins (a tie goes to the more specific part, listed first)
        deepest = max(PARTS, key=lambda part: _end(stack, PARTS[part]))
        counts[deepest if PARTS[deepest] in stack else "other"] += samples
    print(f"py-spy: {total} samples of the API process under wrk (page of 50); raw: {out}")
    for part in [*PARTS, "other"]:
        print(f"  {counts[part] / total:6.1%}  {part}")


def _end(stack: str, marker: str) -> int:
    at = stack.rfind(marker)
    return -1 if at < 0 else at + len(marker)


def _server_pid(base: str) -> int:
    port = base.rsplit(":", 1)[1]
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True)
    marker = "pid="
    start = out.stdout.index(marker) + len(marker)
    return int(out.stdout[start:].split(",", 1)[0])


if __name__ == "__main__":
    main()
