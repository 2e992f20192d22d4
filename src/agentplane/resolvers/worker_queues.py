"""Worker queues: named routes for executions (Kubiya's `worker_queue_id`)."""

import re
import uuid

from tortoise.exceptions import IntegrityError

from agentplane.core.errors import Conflict, NotFound, ValidationFailed
from agentplane.models import WorkerQueue
from agentplane.resolvers.audit import audited
from agentplane.resolvers.auth import Actor
from agentplane.resolvers.pagination import OffsetPage, offset_paginate
from agentplane.resolvers.permissions import Perm, check_tenant, is_platform, require
from agentplane.resolvers.tenants import resolve_tenant_name

NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9_.]{0,98}[a-z0-9])?$")


@audited("worker_queue.create")
async def create_worker_queue(
    actor: Actor | None,
    *,
    name: str,
    display_name: str = "",
    description: str = "",
    max_workers: int | None = None,
    heartbeat_interval: int = 60,
    tenant: str | None = None,
) -> WorkerQueue:
    actor = require(actor, Perm.AGENT_WRITE)
    if not NAME_RE.match(name):
        raise ValidationFailed(
            "Queue name: 1-100 lowercase letters, digits, '-', '_' or '.'", field="name"
        )
    if max_workers is not None and not 1 <= max_workers <= 10_000:
        raise ValidationFailed("`max_workers` must be 1..10000", field="max_workers")
    if not 10 <= heartbeat_interval <= 3600:
        raise ValidationFailed(
            "`heartbeat_interval` must be 10..3600 s", field="heartbeat_interval"
        )
    if len(display_name) > 200:
        raise ValidationFailed("`display_name` is at most 200 characters", field="display_name")
    tenant_id = await resolve_tenant_name(actor, tenant)
    try:
        return await WorkerQueue.create(
            tenant_id=tenant_id,
            name=name,
            display_name=display_name or name,
            description=description,
            max_workers=max_workers,
            heartbeat_interval=heartbeat_interval,
        )
    except IntegrityError:
        raise Conflict(f"A worker queue named {name!r} already exists", field="name") from None


def parse_queue_id(queue_id: str, field: str = "id") -> uuid.UUID:
    try:
        return uuid.UUID(queue_id)
    except (ValueError, AttributeError, TypeError):
        raise ValidationFailed(f"`{field}` must be a UUID", field=field) from None


async def get_worker_queue(actor: Actor | None, queue_id: str) -> WorkerQueue:
    """A queue by UUID; a malformed ID answers like a missing one."""
    actor = require(actor, Perm.AGENT_READ)
    try:
        key = uuid.UUID(queue_id)
    except ValueError:
        raise NotFound(f"Worker queue {queue_id!r} not found") from None
    queue = await WorkerQueue.get_or_none(id=key)
    if queue is None:
        raise NotFound(f"Worker queue {queue_id!r} not found")
    check_tenant(actor, queue.tenant_id, f"Worker queue {queue_id!r}")
    return queue


async def list_worker_queues(
    actor: Actor | None, limit: int, offset: int
) -> OffsetPage[WorkerQueue]:
    actor = require(actor, Perm.AGENT_READ)
    qs = WorkerQueue.all() if is_platform(actor) else WorkerQueue.filter(tenant_id=actor.tenant_id)
    return await offset_paginate(qs, limit, offset, order="created_at")


@audited("worker_queue.delete")
async def delete_worker_queue(actor: Actor | None, queue_id: str) -> None:
    """Delete a queue; executions already routed to it keep its ID in their record."""
    actor = require(actor, Perm.AGENT_WRITE)
    queue = await get_worker_queue(actor, queue_id)
    await WorkerQueue.filter(id=queue.id).delete()
