"""Start the servers a benchmark measures, as real processes."""

import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

BENCH = Path(__file__).resolve().parent


@dataclass
class Server:
    url: str
    token: str
    process: subprocess.Popen[bytes]

    @property
    def ws_url(self) -> str:
        path = "/graphql" if self.token else "/ws"
        return self.url.replace("http://", "ws://") + path

    @property
    def pid(self) -> int:
        return self.process.pid

    def gauges(self) -> dict[str, float]:
        """The server's own gauges of live subscriptions, asyncio tasks and broker channels."""
        response = httpx.get(self.url + "/metrics", timeout=10)
        if response.status_code != 200:
            return {}
        wanted = (
            "agentplane_websockets_active",
            "agentplane_subscriptions_active",
            "agentplane_asyncio_tasks",
            "agentplane_broker_channels",
        )
        values: dict[str, float] = {}
        for line in response.text.splitlines():
            match = re.match(r"^(\w+)(?:\{[^}]*\})? ([0-9.e+-]+)$", line)
            if match and match.group(1) in wanted:
                values[match.group(1)] = values.get(match.group(1), 0) + float(match.group(2))
        return values

    def redis_channels(self, redis_url: str, pattern: str = "agentplane:task:*") -> int:
        import redis

        return len(redis.Redis.from_url(redis_url).pubsub_channels(pattern))


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90  # a loaded machine starts slowly
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text()}")
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server not ready:\n{log.read_text()}")


@contextmanager
def _run(
    command: list[str], env: dict[str, str], workdir: Path, name: str
) -> Iterator[subprocess.Popen[bytes]]:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


@contextmanager
def start_server(
    workdir: Path, database_url: str, env: dict[str, str], *args: str, token: str | None = None
) -> Iterator[Server]:
    """`agentplane serve` on `database_url`, or the raw websocket baseline for "raw"."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    full_env = {**os.environ, **env}
    if database_url == "raw":
        command = [sys.executable, "-m", "uvicorn", "raw_ws:app", "--port", str(port),
                   "--ws", "websockets-sansio", "--ws-per-message-deflate", "false",
                   "--log-level", "warning", "--app-dir", str(BENCH)]  # fmt: skip
        token = ""
    else:
        token = token or "agp_bench_" + secrets.token_urlsafe(24)
        full_env |= {"AGENTPLANE_DATABASE_URL": database_url, "AGENTPLANE_ADMIN_TOKEN": token}
        command = [sys.executable, "-m", "agentplane", "serve", "--port", str(port), *args]
    name = f"server-{port}"
    with _run(command, full_env, workdir, name) as process:
        _wait_ready(url, process, workdir / f"{name}.log")
        yield Server(url, token, process)


@contextmanager
def start_worker(
    workdir: Path, database_url: str, env: dict[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    full_env = {**os.environ, **env, "AGENTPLANE_DATABASE_URL": database_url}
    with _run(
        [sys.executable, "-m", "agentplane", "worker"],
        full_env,
        workdir,
        f"worker-{secrets.token_hex(3)}",
    ) as p:
        yield p


def migrate(database_url: str) -> None:
    """`agentplane migrate`: PostgreSQL servers refuse to start with migrations pending."""
    env = {**os.environ, "AGENTPLANE_DATABASE_URL": database_url}
    subprocess.run([sys.executable, "-m", "agentplane", "migrate"], env=env, check=True)
