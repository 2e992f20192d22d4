"""A snapshot of this server's utilisation (host CPU, memory, the data disk) and how
many tenants are active: platform information, for platform-scoped callers only."""

import asyncio
import logging
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime

import psutil
from prometheus_client import generate_latest

from agentplane.core import observability as obs
from agentplane.core.errors import Forbidden
from agentplane.models import Task, TaskStatus, Tenant, TenantPhase
from agentplane.resolvers.auth import Actor
from agentplane.resolvers.permissions import Perm, is_platform, require
from agentplane.subscriptions import feeds
from agentplane.subscriptions.broker import get_broker

# psutil measures CPU between two calls: this first one starts the interval.
psutil.cpu_percent(interval=None)


@dataclass
class ServerSnapshot:
    cpu_percent: float
    memory_used_bytes: int
    memory_total_bytes: int
    storage_used_bytes: int
    storage_total_bytes: int
    active_tenants: int
    sampled_at: datetime


def _data_dir(database_url: str) -> str:
    """The disk that holds the data: the SQLite file's directory, else the working one."""
    if database_url.startswith("sqlite://"):
        return os.path.dirname(os.path.abspath(database_url.removeprefix("sqlite://")))
    return "."


async def snapshot(actor: Actor | None, database_url: str) -> ServerSnapshot:
    actor = require(actor, Perm.TENANT_READ)
    if not is_platform(actor):
        raise Forbidden("Server metrics are for platform-scoped callers")
    memory = psutil.virtual_memory()
    disk = await asyncio.to_thread(shutil.disk_usage, _data_dir(database_url))
    return ServerSnapshot(
        cpu_percent=psutil.cpu_percent(interval=None),
        memory_used_bytes=memory.total - memory.available,
        memory_total_bytes=memory.total,
        storage_used_bytes=disk.used,
        storage_total_bytes=disk.total,
        active_tenants=await Tenant.filter(phase=TenantPhase.ACTIVE).count(),
        sampled_at=datetime.now(UTC),
    )


async def prometheus_text() -> bytes:
    """This process's metrics in Prometheus text format, with the gauges read at scrape time."""
    obs.ASYNCIO_TASKS.set(len(asyncio.all_tasks()))
    obs.BROKER_CHANNELS.set(get_broker().local_channels())
    obs.BROKER_SUBSCRIPTIONS.set(get_broker().local_subscriptions())
    obs.LIVE_FEEDS.set(feeds.live_feeds())
    obs.LIVE_FEED_MEMBERS.set(feeds.live_members())
    try:
        obs.QUEUE_DEPTH.set(await Task.filter(status=TaskStatus.QUEUED).count())
    except Exception:  # the database is down: the rest of the metrics still matter
        logging.getLogger("agentplane").warning("queue depth unavailable", exc_info=True)
    return generate_latest()
