"""Readiness: the database (and Redis, when configured) must answer."""

import asyncio

from agentplane.core import db
from agentplane.subscriptions.broker import get_broker

PROBE_TIMEOUT_S = 2.0


async def readiness() -> tuple[bool, dict[str, str]]:
    checks: dict[str, str] = {}
    for name, probe in (("database", db.ping), ("broker", get_broker().ping)):
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                await probe()
            checks[name] = "ok"
        except Exception as exc:  # any failure means "not ready", never a 500
            checks[name] = f"unavailable: {type(exc).__name__}"
    return all(v == "ok" for v in checks.values()), checks
