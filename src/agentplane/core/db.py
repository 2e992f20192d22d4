"""Database lifecycle: Tortoise config, init/close, and checked-in migrations."""

import re
from typing import Any, TypeVar

import asyncpg
from tortoise import Model, Tortoise
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.connection import get_connection
from tortoise.context import TortoiseContext
from tortoise.migrations.api import migrate as run_migrations
from tortoise.migrations.executor import MigrationExecutor

M = TypeVar("M", bound=Model)
POOL_MAX = 20  # PostgreSQL pool size unless the URL names one (worker runs + API requests)

APPS = {
    "models": {
        "models": ["agentplane.models"],
        "default_connection": "default",
        "migrations": "agentplane.migrations",
    }
}


class NoResetConnection(asyncpg.Connection):
    """A pooled connection returned to the pool without asyncpg's reset query
    (`pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`): one round trip on
    every release, that is after every ORM statement. We take no advisory locks, open
    no cursors outside transactions, LISTEN nowhere and SET nothing per session; an open
    transaction is still rolled back on release (asyncpg does that before the query)."""

    def get_reset_query(self) -> str:
        return ""


def tortoise_config(database_url: str) -> dict[str, Any]:
    # Accept the libpq spelling too; Tortoise names the asyncpg backend `postgres`.
    if database_url.startswith("postgresql://"):
        database_url = "postgres://" + database_url.removeprefix("postgresql://")
    connection: str | dict[str, Any] = database_url
    if database_url.startswith("postgres://"):
        connection = expand_db_url(database_url)
        connection["credentials"]["connection_class"] = NoResetConnection
        # Tortoise's default pool holds at most 5 connections: the worker's concurrent
        # runs and the API's requests then queue for one, each write waiting out others'
        # commits. A URL's own `?maxsize=` wins; connections open only under load.
        connection["credentials"].setdefault("maxsize", POOL_MAX)
    return {"connections": {"default": connection}, "apps": APPS, "use_tz": True}


async def migrate(database_url: str) -> None:
    """Apply every pending migration from agentplane/migrations (idempotent)."""
    # A context of its own, so migrating never disturbs the application's connections.
    async with TortoiseContext():
        await run_migrations(config=tortoise_config(database_url))


async def pending_migrations(database_url: str) -> list[str]:
    async with TortoiseContext() as ctx:
        await ctx.init(config=tortoise_config(database_url))
        plan = await MigrationExecutor(get_connection("default"), APPS).plan(None)
    return [f"{step.migration.app_label}.{step.migration.name}" for step in plan]


async def init(database_url: str) -> None:
    # Global fallback: requests and background tasks run outside the lifespan's
    # context, and must all see the one connection pool.
    await Tortoise.init(config=tortoise_config(database_url), _enable_global_fallback=True)


async def close() -> None:
    await Tortoise.close_connections()


def placeholders(conn: Any, sql: str) -> str:
    """`?` placeholders in the connection's own style (asyncpg numbers them: $1, $2…)."""
    if conn.capabilities.dialect != "postgres":
        return sql
    return numbered(sql)


def numbered(sql: str) -> str:
    """`?` placeholders numbered as asyncpg takes them."""
    parts = sql.split("?")
    return "".join(p + (f"${i + 1}" if i < len(parts) - 1 else "") for i, p in enumerate(parts))


async def ping() -> None:
    """Raise unless the database answers a trivial query."""
    await get_connection("default").execute_query("SELECT 1")


# For `tortoise makemigrations` (configured in pyproject.toml): the autodetector needs a config.
TORTOISE_ORM = tortoise_config("sqlite://:memory:")


def insert_statement(conn: Any, instance: Model) -> tuple[str, list[Any]]:
    """The INSERT of a new model instance, with its values as Tortoise writes them, for a
    write that carries it inside a statement or a batch of its own."""
    executor = conn.executor_class(model=type(instance), db=conn)
    fields = instance._meta.fields_map
    values = [
        fields[f].to_db_value(getattr(instance, f), instance) for f in executor.regular_columns
    ]
    return executor.insert_query, values


def shift_parameters(sql: str, by: int) -> str:
    """PostgreSQL: renumber a statement's `$n` parameters by `by`, to run it as a part of
    a larger statement whose first `by` parameters are taken."""
    return re.sub(r"\$(\d+)", lambda m: f"${int(m.group(1)) + by}", sql)


def columns_as(model: type[Model], table: str, prefix: str) -> str:
    """A select list of `model`'s columns from `table`, each named `prefix` + its name
    (two models' columns in one row of a join)."""
    return ", ".join(
        f'"{table}"."{column}" AS "{prefix}{column}"'
        for column in model._meta.fields_db_projection.values()
    )


def model_from(model: type[M], row: dict[str, Any], prefix: str) -> M:
    """The instance of `model` whose columns `row` holds under `prefix` (`columns_as`)."""
    return model._init_from_db(
        **{column: row[prefix + column] for column in model._meta.fields_db_projection.values()}
    )
