"""The periodic housekeeping job every API process runs (idempotent, so any number
of processes may run it): purge tenants deleted more than 30 days ago, release
reservations of provider calls that never came back, drop expired login state."""

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from agentplane.core.cancellation import stop_if_cancelled
from agentplane.core.config import Settings
from agentplane.models import DeviceGrant, OidcLogin, Reservation, Session
from agentplane.resolvers import audit, budgets, tenants
from agentplane.resolvers.roles import seed_roles

log = logging.getLogger(__name__)


async def run_once(settings: Settings, now: datetime | None = None) -> dict[str, int]:
    now = now or datetime.now(UTC)
    purged = await tenants.purge_deleted_tenants(now)
    for name in purged:
        await audit.record(audit.SYSTEM, "tenant.purge", resource=name)
    released = await budgets.release_stale(timedelta(seconds=settings.task_timeout_s + 300))
    await Reservation.filter(settled_at__lt=now - timedelta(days=7)).delete()
    await OidcLogin.filter(expires_at__lt=now).delete()
    await DeviceGrant.filter(expires_at__lt=now - timedelta(days=1)).delete()
    await Session.filter(expires_at__lt=now - timedelta(days=30)).delete()
    return {"tenants_purged": len(purged), "reservations_released": released}


async def run_forever(settings: Settings) -> None:
    seeded = False
    while True:
        try:
            if not seeded:
                await seed_roles()  # the role table mirrors the built-in definitions
                seeded = True
            result = await run_once(settings)
            if any(result.values()):
                log.info("maintenance: %s", result)
        except Exception:  # e.g. the database is briefly away: try again next round
            stop_if_cancelled()
            log.exception("maintenance round failed")
        await asyncio.sleep(settings.maintenance_interval_s)
