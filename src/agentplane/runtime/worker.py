"""The worker: claims queued tasks atomically and runs them.

Any number of workers (in-process or `agentplane worker` processes) may poll the
same database: a claim is a conditional UPDATE `queued -> running`, so exactly
one of them wins each task. Submissions wake workers through the broker; a
periodic poll covers wake-ups that were missed.
"""

import asyncio
import contextlib
import logging
import os
import socket
from datetime import UTC, datetime

from tortoise.expressions import F

from agentplane.config import Settings
from agentplane.models import Agent, Task, TaskStatus
from agentplane.resolvers.traces import transition
from agentplane.runtime.agent_loop import MaxStepsExceeded, run_agent
from agentplane.runtime.providers import build_providers
from agentplane.runtime.providers.base import Provider, ProviderError
from agentplane.subscriptions import events
from agentplane.subscriptions.broker import Subscription, get_broker

log = logging.getLogger(__name__)
POLL_INTERVAL_S = 1.0


class Worker:
    def __init__(self, settings: Settings, providers: dict[str, Provider] | None = None) -> None:
        self.settings = settings
        self.providers = providers or build_providers(settings)
        self.id = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.running: dict[str, asyncio.Task[None]] = {}
        self.cancel_requested: set[str] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False

    async def start(self) -> None:
        ready = asyncio.Event()
        self._loop_task = asyncio.create_task(self._main(ready), name=f"worker {self.id}")
        await ready.wait()

    async def stop(self) -> None:
        """Stop claiming; hand in-flight tasks back to the queue for another worker."""
        self._stopping = True
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
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
                        while len(self.running) < self.settings.worker_concurrency:
                            task = await self.claim()
                            if task is None:
                                break
                            self.running[task.id] = asyncio.create_task(self._run(task))
                    except Exception:  # database unavailable: keep polling, do not die
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

    async def claim(self) -> Task | None:
        """Claim the oldest queued task, or None when none is left.

        Losing a race for a candidate means another worker took it, so each
        round makes progress; the loop ends when the queue is empty.
        """
        while True:
            candidates = (
                await Task.filter(status=TaskStatus.QUEUED)
                .order_by("id")
                .limit(10)
                .values_list("id", flat=True)
            )
            if not candidates:
                return None
            for task_id in candidates:
                task = await transition(
                    str(task_id),
                    [TaskStatus.QUEUED],
                    TaskStatus.RUNNING,
                    worker_id=self.id,
                    attempt=F("attempt") + 1,
                    started_at=datetime.now(UTC),
                )
                if task is not None:
                    return task

    async def _run(self, task: Task) -> None:
        try:
            await self._execute(task)
        finally:
            self.running.pop(task.id, None)
            self.cancel_requested.discard(task.id)
            self._wake.set()  # a slot is free

    async def _execute(self, task: Task) -> None:
        running = [TaskStatus.RUNNING]
        if task.cancel_requested:  # cancelled between the claim and now
            await transition(task.id, running, TaskStatus.CANCELLED, reason="cancelled")
            return
        try:
            agent = await Agent.get(id=task.agent_id)
            async with asyncio.timeout(self.settings.task_timeout_s):
                output = await run_agent(task, agent, self.providers)
        except asyncio.CancelledError:
            if task.id in self.cancel_requested:
                await transition(task.id, running, TaskStatus.CANCELLED, reason="cancelled")
                return
            # The worker is stopping: hand the task back so another worker runs it.
            await asyncio.shield(
                transition(
                    task.id, running, TaskStatus.QUEUED, reason="worker stopped", worker_id=None
                )
            )
            raise
        except TimeoutError:
            await self._fail(task, f"timed out after {self.settings.task_timeout_s}s")
        except (ProviderError, MaxStepsExceeded) as exc:
            await self._fail(task, str(exc))
        except Exception:
            log.exception("task %s crashed", task.id)
            await self._fail(task, "internal error while running the task")
        else:
            await transition(task.id, running, TaskStatus.COMPLETED, output=output)

    async def _fail(self, task: Task, error: str) -> None:
        await transition(
            task.id, [TaskStatus.RUNNING], TaskStatus.FAILED, reason=error, error=error
        )
