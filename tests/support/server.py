"""Run `agentplane serve` as a real uvicorn process for over-the-wire tests."""

import os
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


@dataclass
class LiveServer:
    base_url: str
    ws_url: str
    admin_token: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _base_env(database_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "AGENTPLANE_DATABASE_URL": database_url,
        "AGENTPLANE_SCRIPTED_DELAY_MS": os.environ.get("AGENTPLANE_SCRIPTED_DELAY_MS", "5"),
        # Tests make many calls; the rate-limit tests set a small limit themselves.
        "AGENTPLANE_RATE_LIMIT_PER_MIN": os.environ.get("AGENTPLANE_RATE_LIMIT_PER_MIN", "1000000"),
    }


@contextmanager
def live_worker(
    database_url: str, workdir: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """An `agentplane worker` process; the caller may SIGKILL it."""
    log_path = workdir / f"worker-{secrets.token_hex(4)}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "agentplane", "worker"],
            cwd=workdir,
            env={**_base_env(database_url), **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def live_server(
    database_url: str,
    workdir: Path,
    *extra_args: str,
    with_admin_token: bool = True,
    admin_token: str | None = None,
    env: dict[str, str] | None = None,
    port: int | None = None,
    ready_timeout_s: float = 90,  # a fresh database migrates first; slow on a loaded machine
) -> Iterator[LiveServer]:
    """Serve on `port` (default: a free one; a restart passes the old one);
    `with_admin_token=False` leaves AGENTPLANE_ADMIN_TOKEN unset."""
    port = port or free_port()
    if admin_token is None:
        admin_token = "agp_admin_" + secrets.token_urlsafe(24) if with_admin_token else ""
    env = {
        **_base_env(database_url),
        "AGENTPLANE_ADMIN_TOKEN": admin_token,
        **(env or {}),
    }
    log_path = workdir / f"server-{port}-{secrets.token_hex(3)}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "agentplane", "serve", "--port", str(port), *extra_args],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = LiveServer(
        f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/graphql", admin_token, process, log_path
    )
    try:
        deadline = time.monotonic() + ready_timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{server.log()}")
            try:
                if httpx.get(server.base_url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not become ready:\n{server.log()}")
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
