"""The `agentplane` command: serve, worker, migrate, token create."""

import argparse
import asyncio
import logging
import os
import signal

import uvicorn

from agentplane.core import db
from agentplane.core.config import Settings
from agentplane.core.errors import DomainError
from agentplane.core.observability import configure_logging

WS_MAX_MESSAGE_BYTES = 1024 * 1024  # a larger websocket message closes the connection (1009)


def _serve(settings: Settings, args: argparse.Namespace) -> None:
    if not settings.is_sqlite:
        pending = asyncio.run(_pending(settings))
        if pending:
            raise SystemExit(
                f"{len(pending)} migration(s) pending ({', '.join(pending)}): "
                "run `agentplane migrate` first"
            )
    from agentplane.http.app import create_app

    app = create_app(settings, run_worker=not args.no_worker, bootstrap=True)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="info",
        log_config=None,  # our logging (configure_logging); one access line per request
        access_log=False,
        ws="websockets-sansio",
        ws_max_size=WS_MAX_MESSAGE_BYTES,
        # Compressing every frame for every subscriber costs more CPU than it saves on
        # small JSON events; fan-out is CPU-bound.
        ws_per_message_deflate=False,
    )


async def _pending(settings: Settings) -> list[str]:
    try:
        return await db.pending_migrations(settings.database_url)
    finally:
        await db.close()


async def _worker(settings: Settings) -> None:
    from agentplane.runtime.worker import Worker
    from agentplane.subscriptions.broker import make_broker, set_broker

    if settings.is_sqlite:
        await db.migrate(settings.database_url)
    await db.init(settings.database_url)
    broker = make_broker(settings.redis_url)
    await broker.start()
    set_broker(broker)
    worker = Worker(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await worker.start()
    logging.getLogger("agentplane").info("worker %s running", worker.id)
    try:
        await stop.wait()
    finally:
        await worker.stop()
        await broker.close()
        await db.close()


async def _migrate(settings: Settings) -> None:
    await db.migrate(settings.database_url)
    await db.close()
    print("migrations applied")


async def _token_create(settings: Settings, tenant_name: str | None, role: str, name: str) -> str:
    from agentplane.models import Tenant
    from agentplane.resolvers.tokens import mint_token

    if settings.is_sqlite:
        await db.migrate(settings.database_url)
    await db.init(settings.database_url)
    try:
        tenant_id = None
        if tenant_name is not None:
            tenant, created = await Tenant.get_or_create(name=tenant_name)
            if created:
                print(f"created tenant {tenant_name!r}")
            tenant_id = tenant.id
        _, plaintext = await mint_token(tenant_id=tenant_id, role=role, name=name)
        return plaintext
    finally:
        await db.close()


def _login(url: str, interval: float | None) -> str:
    """CLI sign-in by the device authorization grant: the user approves in a browser."""
    import sys
    import time

    import httpx

    base = url.rstrip("/")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # stderr is for the user's prompt
    try:
        started = httpx.post(base + "/api/v1/auth/device", timeout=10)
    except httpx.HTTPError as exc:
        raise SystemExit(f"error: cannot reach {base}: {exc}") from None
    if started.status_code != 200:
        raise SystemExit(f"error: {base} answered {started.status_code}: {started.text[:200]}")
    grant = started.json()
    print(
        f"Open {grant['verificationUriComplete']} in a browser where you are signed in,\n"
        f"check that it shows the code {grant['userCode']}, and approve.",
        file=sys.stderr,
        flush=True,
    )
    wait = interval if interval is not None else float(grant.get("interval", 5))
    deadline = time.monotonic() + float(grant.get("expiresIn", 600))
    while time.monotonic() < deadline:
        time.sleep(wait)
        polled = httpx.get(
            base + "/api/v1/auth/device/token",
            params={"deviceCode": grant["deviceCode"]},
            timeout=10,
        )
        if polled.status_code == 200:
            print("Signed in.", file=sys.stderr)
            return str(polled.json()["token"])
        if polled.status_code == 410:
            break
        if polled.status_code != 202:
            raise SystemExit(f"error: {polled.status_code}: {polled.text[:200]}")
    raise SystemExit("error: the code expired before it was approved; run `agentplane login` again")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="agentplane", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the API (and, by default, a worker)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8090)
    serve.add_argument("--no-worker", action="store_true", help="API only; run workers apart")
    sub.add_parser("worker", help="run a worker that executes queued tasks")
    sub.add_parser("migrate", help="apply database migrations")
    login = sub.add_parser(
        "login", help="sign in through the browser (device grant); prints an access token"
    )
    login.add_argument("--url", default=os.environ.get("AGENTPLANE_URL", "http://127.0.0.1:8090"))
    login.add_argument("--interval", type=float, help="seconds between polls (default: server's)")
    token = sub.add_parser("token", help="manage access tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="create a token and print it once")
    create.add_argument("--tenant", help="tenant name (created if missing); omit for platform")
    create.add_argument("--role", required=True)
    create.add_argument("--name", default="cli")
    args = parser.parse_args(argv)

    if args.command in ("serve", "worker"):  # JSON lines with request ids (observability.py)
        configure_logging(os.environ.get("AGENTPLANE_LOG_FORMAT") or "json")
    else:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
        )
    settings = Settings.from_env()
    if args.command == "serve":
        _serve(settings, args)
    elif args.command == "worker":
        asyncio.run(_worker(settings))
    elif args.command == "migrate":
        asyncio.run(_migrate(settings))
    elif args.command == "login":
        print(_login(args.url, args.interval))
    elif args.command == "token":
        try:
            print(asyncio.run(_token_create(settings, args.tenant, args.role, args.name)))
        except DomainError as exc:
            raise SystemExit(f"error: {exc.message}") from None
