"""Test database housekeeping."""

from tortoise.connection import get_connection
from tortoise.context import TortoiseContext

from agentplane.core import db

TABLES = (
    "tool",
    "mcp_server",
    "chunk",
    "document",
    "knowledge_base",
    "memory",
    "step_payload",
    "audit_event",
    "budget_reservation",
    "budget",
    "provider_key",
    "device_grant",
    "oidc_login",
    "session",
    "role_assignment",
    "user_account",
    "usage_record",
    "step",
    "task",
    "worker_queue",
    "agent",
    "access_token",
    "tenant",
)


async def truncate_all(database_url: str) -> None:
    """Empty every table, before the app (and its worker) starts, in a context of its own."""
    async with TortoiseContext() as ctx:
        await ctx.init(config=db.tortoise_config(database_url))
        conn = get_connection("default")
        if conn.capabilities.dialect == "postgres":
            await conn.execute_script(f"TRUNCATE {', '.join(TABLES)} CASCADE")
        else:
            for table in TABLES:
                await conn.execute_script(f"DELETE FROM {table}")
