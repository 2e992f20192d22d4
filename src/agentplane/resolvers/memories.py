"""Operators' view of memories: list, create, edit, approve, archive, delete."""

from datetime import datetime
from typing import Any

from tortoise.transactions import in_transaction

from agentplane.core.errors import NotFound, ValidationFailed
from agentplane.models import Agent, Memory, MemoryStatus
from agentplane.resolvers.agents import get_agent
from agentplane.resolvers.audit import audited
from agentplane.resolvers.auth import Actor
from agentplane.resolvers.pagination import Page, paginate
from agentplane.resolvers.permissions import Perm, get_owned, require, scoped_to_tenant
from agentplane.resolvers.tenants import check_writable, resolve_tenant_name
from agentplane.retrieval import memory
from agentplane.retrieval.embedders import get_embedder, to_blob
from agentplane.retrieval.fusion import Hit


def _check_fields(text: str | None, type: str | None, importance: float | None) -> None:
    if text is not None and not 1 <= len(text.strip()) <= 10_000:
        raise ValidationFailed("`text` must be 1-10000 characters", field="text")
    if type is not None and type not in memory.TYPES:
        raise ValidationFailed(f"`type` must be one of {list(memory.TYPES)}", field="type")
    if importance is not None and not 0 <= importance <= 1:
        raise ValidationFailed("`importance` must be 0..1", field="importance")


async def _agent_in(actor: Actor, agent_id: str, tenant_id: str | None) -> Agent:
    """The agent, which must belong to `tenant_id` when one is given."""
    agent = await get_agent(actor, agent_id)
    if tenant_id is not None and agent.tenant_id != tenant_id:
        raise NotFound(f"Agent {agent_id!r} not found")
    return agent


async def list_memories(
    actor: Actor | None,
    first: int | None = None,
    after: str | None = None,
    *,
    agent_id: str | None = None,
    subject: str | None = None,
    status: str | None = None,
    type: str | None = None,
) -> Page[Memory]:
    """Newest first, keyset-paginated like every list."""
    actor = require(actor, Perm.KNOWLEDGE_READ)
    query = await scoped_to_tenant(actor, Memory.all(), None)
    if agent_id is not None:
        await _agent_in(actor, agent_id, None)
        query = query.filter(agent_id=agent_id)
    if subject is not None:
        query = query.filter(subject=subject)
    if status is not None:
        if status not in set(MemoryStatus):
            raise ValidationFailed(f"Unknown status {status!r}", field="status")
        query = query.filter(status=status)
    if type is not None:
        query = query.filter(type=type)
    return await paginate(query, first, after, newest_first=True)


@audited("memory.create")
async def create_memory(
    actor: Actor | None,
    *,
    text: str,
    agent_id: str | None = None,
    subject: str | None = None,
    type: str = "fact",
    importance: float = 0.5,
    conflict_key: str | None = None,
    expires_at: datetime | None = None,
    pending: bool = False,
    tenant: str | None = None,
) -> tuple[Memory, list[Memory], list[Memory]]:
    actor = require(actor, Perm.KNOWLEDGE_WRITE)
    _check_fields(text, type, importance)
    tenant_id = await resolve_tenant_name(actor, tenant)
    max_memories = memory.DEFAULT_MAX_MEMORIES
    if agent_id is not None:
        agent = await _agent_in(actor, agent_id, tenant_id)
        max_memories = int((agent.config or {}).get("maxMemories", max_memories))
    return await memory.write(
        tenant_id=tenant_id,
        agent_id=agent_id,
        subject=subject,
        text=text.strip(),
        type=type,
        importance=importance,
        conflict_key=conflict_key,
        expires_at=expires_at,
        status=MemoryStatus.PENDING if pending else MemoryStatus.ACTIVE,
        max_memories=max_memories,
    )


async def get_memory(actor: Actor | None, memory_id: str) -> Memory:
    actor = require(actor, Perm.KNOWLEDGE_READ)
    return await get_owned(actor, Memory, memory_id, "Memory")


async def _writable(actor: Actor | None, memory_id: str) -> Memory:
    actor = require(actor, Perm.KNOWLEDGE_WRITE)
    row = await get_owned(actor, Memory, memory_id, "Memory")
    await check_writable(row.tenant_id)
    return row


@audited("memory.update")
async def update_memory(actor: Actor | None, id: str, **changes: Any) -> Memory:
    row = await _writable(actor, id)
    _check_fields(changes.get("text"), changes.get("type"), changes.get("importance"))
    for key, value in changes.items():
        setattr(row, key, value)
    if "text" in changes:
        row.embedding = to_blob((await get_embedder().embed([row.text]))[0])
    await row.save()
    return row


@audited("memory.approve")
async def approve_memory(actor: Actor | None, memory_id: str) -> tuple[Memory, list[Memory]]:
    """A pending memory goes live, superseding any active one with its conflict key:
    (the memory, the ones it superseded). Compare-and-set, so of two racing approvals
    one wins and the other is told the memory is no longer pending."""
    row = await _writable(actor, memory_id)
    async with in_transaction():
        changed = await Memory.filter(id=row.id, status=MemoryStatus.PENDING).update(
            status=MemoryStatus.ACTIVE
        )
        if not changed:
            raise ValidationFailed(f"Memory is {row.status}, not pending", field="id")
        row.status = MemoryStatus.ACTIVE
        superseded = await memory.supersede(row)
    await row.refresh_from_db()
    return row, superseded


@audited("memory.archive")
async def archive_memory(actor: Actor | None, memory_id: str) -> Memory:
    row = await _writable(actor, memory_id)
    row.status = MemoryStatus.ARCHIVED
    await row.save(update_fields=["status", "updated_at"])
    return row


@audited("memory.delete")
async def delete_memory(actor: Actor | None, memory_id: str) -> Memory:
    row = await _writable(actor, memory_id)
    await Memory.filter(id=row.id).delete()
    return row


async def recall(
    actor: Actor | None, query: str, agent_id: str | None = None, first: int = 5
) -> list[Hit]:
    actor = require(actor, Perm.KNOWLEDGE_READ)
    if not 1 <= first <= 100:
        raise ValidationFailed("`first` must be 1..100", field="first")
    if agent_id is not None:
        tenant_id = (await _agent_in(actor, agent_id, None)).tenant_id
    elif actor.tenant_id is not None:
        tenant_id = actor.tenant_id
    else:
        raise ValidationFailed("Platform callers must name an `agentId`", field="agentId")
    return await memory.recall(tenant_id, agent_id, query, first)
