"""The worker: claims tasks under a lease, runs them, and takes over lapsed ones.

Any number of workers (in-process or `agentplane worker` processes) share the
task table, which is the queue:
- a claim is a conditional UPDATE (`queued|retrying -> running`), so exactly one
  worker wins each task; it holds a lease it renews every third of the TTL;
- every worker also reaps: a running task whose lease lapsed (its worker died)
  goes to `retrying`, and is claimed again; after `max_attempts` lapses it fails;
- every write a worker makes is fenced with its claim's attempt number, so a
  worker that lost its lease cannot write after its successor.
Submissions and control messages (cancel, pause) arrive through the broker; a
short poll covers anything missed.
"""

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from tortoise.expressions import F

from agentplane.core.cancellation import stop_if_cancelled
from agentplane.core.config import Settings
from agentplane.models import Agent, Task, TaskStatus
from agentplane.resolvers import approvals as approval_requests
from agentplane.resolvers import concurrency
from agentplane.resolvers.traces import LeaseLost, transition
from agentplane.runtime.agent_loop import MaxStepsExceeded, PauseRequested, run_agent
from agentplane.runtime.approvals import ApprovalExpired, ApprovalPending
from agentplane.runtime.control import RunPaused
from agentplane.runtime.providers import build_providers
from agentplane.runtime.providers.base import Provider, ProviderError
from agentplane.subscriptions import events
from agentplane.subscriptions.broker import Subscription, get_broker

log = logging.getLogger(__name__)
POLL_INTERVAL_S = 1.0
APPROVAL_SWEEP_S = 5.0  # how often a worker expires due approval requests
CLAIMABLE = (TaskStatus.QUEUED, TaskStatus.RETRYING)


def _now() -> datetime:
    return datetime.now(UTC)


class Claimed(NamedTuple):
    task: Task
    agent: Agent  # read with the claim (concurrency.candidates)


class Worker:
    def __init__(self, settings: Settings, providers: dict[str, Provider] | None = None) -> None:
        self.settings = settings
        self.providers = providers or build_providers(settings)
        self.id = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.running: dict[str, asyncio.Task[None]] = {}
        self.claims: dict[str, int] = {}  # task id -> attempt (the fence)
        self.cancel_requested: set[str] = set()
        self.lost: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._next_sweep = 0.0

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.settings.lease_ttl_s)

    async def start(self) -> None:
        ready = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._main(ready), name=f"worker {self.id}"),
            asyncio.create_task(self._heartbeat(), name=f"heartbeat {self.id}"),
        ]
        await ready.wait()

    async def stop(self) -> None:
        """Stop claiming; hand in-flight tasks back to the queue for another worker."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for runner in list(self.running.values()):
            runner.cancel()
        await asyncio.gather(*self.running.values(), return_exceptions=True)

    async def _main(self, ready: asyncio.Event) -> None:
        broker = get_broker()
        async with (
            broker.subscribe(events.QUEUE_CHANNEL) as queue_sub,
            broker.subscribe(events.CONTROL_CHANNEL) as control_sub,
        ):
            listeners = [
                asyncio.create_task(self._listen_queue(queue_sub)),
                asyncio.create_task(self._listen_control(control_sub)),
            ]
            ready.set()
            try:
                while True:
                    try:
                        await self.reap()
                        while (free := self.settings.worker_concurrency - len(self.running)) > 0:
                            if len(await self.claim_up_to(free, self._start)) < free:
                                break
                    except Exception:  # database unavailable: keep polling, do not die
                        stop_if_cancelled()
                        log.exception("claiming tasks failed; retrying")
                    self._wake.clear()
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
                    # cancellation that races a wake-up, and stop() would wait forever.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(POLL_INTERVAL_S):
                            await self._wake.wait()
            finally:
                for listener in listeners:
                    listener.cancel()

    async def _listen_queue(self, sub: Subscription) -> None:
        async for _ in sub:
            self._wake.set()

    async def _listen_control(self, sub: Subscription) -> None:
        async for message in sub:
            task_id = message.get("cancel")
            runner = self.running.get(task_id) if isinstance(task_id, str) else None
            if task_id and runner is not None:
                self.cancel_requested.add(task_id)
                runner.cancel()

    async def _heartbeat(self) -> None:
        """Renew the lease of every task this worker runs; stop those it lost."""
        while True:
            await asyncio.sleep(self.settings.lease_ttl_s / 3)
            for task_id, attempt in list(self.claims.items()):
                try:
                    renewed = await Task.filter(
                        id=task_id, attempt=attempt, status=TaskStatus.RUNNING
                    ).update(lease_expires_at=_now() + self.lease)
                except Exception:
                    stop_if_cancelled()
                    log.exception("lease renewal failed for %s", task_id)
                    continue
                runner = self.running.get(task_id)
                if not renewed and runner is not None:
                    self.lost.add(task_id)
                    runner.cancel()

    async def reap(self) -> None:
        """Move tasks whose lease lapsed to `retrying`, or fail them after max_attempts;
        every few seconds, expire due approval requests (their tasks move on)."""
        if time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + APPROVAL_SWEEP_S
            await approval_requests.expire_due()
        lapsed = await Task.filter(status=TaskStatus.RUNNING, lease_expires_at__lt=_now())
        for task in lapsed:
            reason = f"lease expired (worker {task.worker_id})"
            if task.expiries + 1 >= self.settings.max_attempts:
                await transition(
                    task.id,
                    [TaskStatus.RUNNING],
                    TaskStatus.FAILED,
                    reason=f"{reason}; gave up after {task.expiries + 1} attempts",
                    fence=task.attempt,
                    error=f"worker lost {task.expiries + 1} times",
                    expiries=task.expiries + 1,
                    lease_expires_at=None,
                )
            else:
                await transition(
                    task.id,
                    [TaskStatus.RUNNING],
                    TaskStatus.RETRYING,
                    reason=reason,
                    fence=task.attempt,
                    expiries=task.expiries + 1,
                    worker_id=None,
                    lease_expires_at=None,
                )

    async def claim(self) -> Task | None:
        """Claim the oldest claimable task, or None when none is left."""
        claimed = await self.claim_up_to(1)
        return claimed[0].task if claimed else None

    def _start(self, claimed: Claimed) -> None:
        task = claimed.task
        self.claims[task.id] = task.attempt
        self.running[task.id] = asyncio.create_task(self._run(task, claimed.agent))

    async def claim_up_to(
        self, n: int, start: Callable[[Claimed], None] | None = None
    ) -> list[Claimed]:
        """Claim up to `n` of the oldest claimable tasks; fewer when the queue runs out.
        `start` runs each one as soon as it is claimed (so an error claiming the next
        leaves none claimed and not running).

        Losing a race for a candidate means another worker took it, so each
        round makes progress; the loop ends when the queue is empty or `n` are claimed.
        """
        claimed: list[Claimed] = []
        while len(claimed) < n:
            limit = max(n - len(claimed), 10)
            found = await concurrency.candidates(CLAIMABLE, limit)
            for candidate in found:
                # The candidate's status and attempt pin the compare-and-set, so the claim
                # is one statement (it fails if another worker moved the task meanwhile).
                task = await concurrency.claim_within_limit(
                    candidate,
                    transition(
                        candidate.id,
                        [candidate.status],
                        TaskStatus.RUNNING,
                        fence=candidate.attempt,
                        details={"worker": self.id},  # the trace says who runs it
                        worker_id=self.id,
                        attempt=F("attempt") + 1,
                        started_at=_now(),
                        lease_expires_at=_now() + self.lease,
                    ),
                )
                if task is not None:
                    log.info("claimed %s (attempt %d)", task.id, task.attempt)
                    claimed.append(Claimed(task, candidate.agent))
                    if start is not None:
                        start(claimed[-1])
                    if len(claimed) == n:
                        break
            if len(found) < limit:
                break  # the queue is empty
        return claimed

    async def _run(self, task: Task, agent: Agent) -> None:
        try:
            await self._execute(task, agent)
        except LeaseLost:
            log.warning("lost the lease on %s; another worker continues it", task.id)
        finally:
            self.running.pop(task.id, None)
            self.claims.pop(task.id, None)
            self.cancel_requested.discard(task.id)
            self.lost.discard(task.id)
            self._wake.set()  # a slot is free

    async def _end(
        self, task: Task, to: TaskStatus, reason: str | None = None, **changes: Any
    ) -> None:
        await transition(
            task.id,
            [TaskStatus.RUNNING],
            to,
            reason=reason,
            fence=task.attempt,
            lease_expires_at=None,
            **changes,
        )

    async def _execute(self, task: Task, agent: Agent) -> None:
        """Run a claimed task with its agent as read with the claim's candidate (one
        statement before the claim; a task submitted after an edit of its agent was
        not yet there to be read before the edit, so it runs with the edit)."""
        if task.cancel_requested:  # cancelled between the claim and now
            await self._end(task, TaskStatus.CANCELLED, "cancelled", status_reason="cancelled")
            return
        timeout_s = agent.timeout_s or self.settings.task_timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                output = await run_agent(task, agent, self.providers)
        except asyncio.CancelledError:
            if await self._cancelled(task):
                raise
        except PauseRequested:
            await self._end(task, TaskStatus.PAUSED, "paused", pause_requested=False)
        except ApprovalPending as pending:  # waits for a human, holding no worker
            await approval_requests.park(task, pending.request)
        except RunPaused as paused:  # e.g. a budget ceiling: resumeTask continues it
            await self._end(
                task, TaskStatus.PAUSED, paused.reason, status_reason=paused.reason, worker_id=None
            )
        except TimeoutError:
            await self._fail(task, f"timed out after {timeout_s}s")
        except (ProviderError, MaxStepsExceeded, ApprovalExpired) as exc:
            await self._fail(task, str(exc))
        except LeaseLost:
            raise
        except Exception:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                # A cancel that a driver error replaced on its way out is still a cancel.
                if await self._cancelled(task):
                    raise asyncio.CancelledError from None
                return
            log.exception("task %s crashed", task.id)
            await self._fail(task, "internal error while running the task")
        else:
            await self._end(task, TaskStatus.COMPLETED, output=output)

    async def _cancelled(self, task: Task) -> bool:
        """The run was cancelled: why decides what is written. True: the worker is stopping."""
        if task.id in self.lost:
            return False  # another worker owns it now: write nothing
        if task.id in self.cancel_requested:
            await self._end(task, TaskStatus.CANCELLED, "cancelled", status_reason="cancelled")
            return False
        # The worker is stopping: hand the task back so another worker runs it.
        await asyncio.shield(self._end(task, TaskStatus.QUEUED, "worker stopped", worker_id=None))
        return True

    async def _fail(self, task: Task, error: str) -> None:
        await self._end(task, TaskStatus.FAILED, error, error=error)
