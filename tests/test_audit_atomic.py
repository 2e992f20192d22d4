"""An audited change and its audit record commit together or not at all, and what the
change announces (broker messages) goes out only after that commit.

The failure is real: a trigger in the database refuses the audit insert of one action,
after the change's own rows were written in the same transaction."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from asyncpg.exceptions import RaiseError
from tortoise.connection import get_connection
from tortoise.exceptions import IntegrityError, OperationalError

from agentplane.models import Agent, AuditEvent, Task
from agentplane.resolvers import agents, tasks
from agentplane.resolvers.auth import Actor
from agentplane.subscriptions import events
from agentplane.subscriptions.broker import get_broker
from tests.support.factories import make_agent, make_tenant, make_token
from tests.support.graphql import GraphQLClient, error_codes

# How each database reports the trigger's refusal (Tortoise passes asyncpg's through).
REFUSED = (IntegrityError, OperationalError, RaiseError)


@asynccontextmanager
async def audit_refuses(action: str) -> AsyncIterator[None]:
    """The audit table refuses records of `action` while inside."""
    conn = get_connection("default")
    if conn.capabilities.dialect == "postgres":
        await conn.execute_script(
            "CREATE OR REPLACE FUNCTION audit_refuses() RETURNS trigger AS $$ BEGIN "
            f"IF NEW.action = '{action}' THEN RAISE EXCEPTION 'audit store down'; END IF; "
            "RETURN NEW; END $$ LANGUAGE plpgsql; "
            "CREATE TRIGGER audit_refuses BEFORE INSERT ON audit_event "
            "FOR EACH ROW EXECUTE FUNCTION audit_refuses();"
        )
        drop = "DROP TRIGGER audit_refuses ON audit_event; DROP FUNCTION audit_refuses();"
    else:
        await conn.execute_script(
            "CREATE TRIGGER audit_refuses BEFORE INSERT ON audit_event "
            f"WHEN NEW.action = '{action}' BEGIN SELECT RAISE(ABORT, 'audit store down'); END;"
        )
        drop = "DROP TRIGGER audit_refuses;"
    try:
        yield
    finally:
        await conn.execute_script(drop)


async def test_a_change_whose_audit_record_fails_is_rolled_back(services: object) -> None:
    # Given an operator, and an audit table that refuses `agent.create`
    tenant = await make_tenant("acme")
    operator = Actor(kind="token", role="operator", tenant_id=tenant.id)
    async with audit_refuses("agent.create"):
        # When an agent is created: its row is written, then its audit record fails
        with pytest.raises(REFUSED):
            await agents.create_agent(operator, name="ghost", model="scripted/echo")
    # Then neither is left: no agent without its audit entry
    assert not await Agent.filter(name="ghost").exists()
    assert not await AuditEvent.filter(action="agent.create").exists()
    # And once the audit table works again, both are written together
    agent = await agents.create_agent(operator, name="real", model="scripted/echo")
    recorded = await AuditEvent.get(action="agent.create")
    assert (recorded.resource, recorded.outcome) == (agent.id, "success")


async def test_nothing_is_announced_for_a_change_rolled_back(services: object) -> None:
    # Given an agent and a listener on the queue channel workers wake on
    tenant = await make_tenant("acme")
    agent = await make_agent(tenant)
    operator = Actor(kind="token", role="operator", tenant_id=tenant.id)
    broker = get_broker()
    async with broker.subscribe(events.QUEUE_CHANNEL) as queue:
        # When a submit fails at its audit record
        async with audit_refuses("task.submit"):
            with pytest.raises(REFUSED):
                await tasks.submit_task(operator, agent_id=agent.id, query="never")
        # Then no task exists and no worker was told of one
        assert not await Task.filter(query="never").exists()
        assert await queue.get(timeout=0.3) is None
        # When a submit succeeds, then the announcement follows its commit
        task = await tasks.submit_task(operator, agent_id=agent.id, query="real")
        message = await queue.get(timeout=2)
    assert message == {"task_id": task.id}
    assert await AuditEvent.filter(action="task.submit", resource=task.id).count() == 1


async def test_over_graphql_the_failure_is_internal_and_leaves_nothing(
    gql: GraphQLClient,
) -> None:
    tenant = await make_tenant("acme")
    token = await make_token(tenant, "operator")
    create = 'mutation { createAgent(input: {name: "ghost"}) { agent { id } } }'
    async with audit_refuses("agent.create"):
        body = await gql(create, token)
    assert error_codes(body) == ["INTERNAL"]
    assert not await Agent.filter(name="ghost").exists()
    await asyncio.sleep(0)  # nothing pending either
    assert not await AuditEvent.filter(action="agent.create").exists()
