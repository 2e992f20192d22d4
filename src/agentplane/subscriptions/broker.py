"""Publish/subscribe between the processes of one installation.

`MemoryBroker` serves a single process; `RedisBroker` connects many through Redis
pub/sub. Either way a process holds one upstream subscription per channel and
fans messages out to its local subscribers, each with a bounded queue so a slow
consumer is cut off instead of slowing the others.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
from redis.asyncio import Redis

from agentplane.core.post_commit import after_commit

log = logging.getLogger(__name__)

QUEUE_SIZE = 1000
AUTH_GENERATION_KEY = "agentplane:auth-generation"


class SubscriberTooSlow(Exception):
    """The subscriber fell more than QUEUE_SIZE messages behind and was dropped."""


class Subscription:
    def __init__(self, broker: "Broker", channel: str, queue_size: int = QUEUE_SIZE) -> None:
        self.broker = broker
        self.channel = channel
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(queue_size)
        self.overflowed = False

    def deliver(self, message: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed = True

    async def get(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next message, or None after `timeout` seconds without one."""
        if self.overflowed:
            raise SubscriberTooSlow(self.channel)
        if not self.queue.empty():  # the hot path of a busy stream: no timer needed
            return self.queue.get_nowait()
        try:
            async with asyncio.timeout(timeout):
                return await self.queue.get()
        except TimeoutError:
            return None

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            message = await self.get()
            assert message is not None
            yield message


class Broker:
    def __init__(self) -> None:
        self._subscribers: dict[str, set[Subscription]] = {}

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        """Send now, or, inside `post_commit.atomic()`, once its transaction commits."""
        await after_commit(lambda: self._send(channel, message))

    async def _send(self, channel: str, message: dict[str, Any]) -> None:
        raise NotImplementedError

    # The installation's auth generation: bumped after every change to what a credential
    # authenticates as, read on every hit of the token cache (resolvers/actor_cache.py).
    async def auth_generation(self) -> int:
        raise NotImplementedError

    async def bump_auth_generation(self) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def ping(self) -> None:
        pass

    async def _upstream_subscribe(self, channel: str) -> None:
        pass

    async def _upstream_unsubscribe(self, channel: str) -> None:
        pass

    def _fan_out(self, channel: str, message: dict[str, Any]) -> None:
        for sub in tuple(self._subscribers.get(channel, ())):
            sub.deliver(message)

    @contextlib.asynccontextmanager
    async def subscribe(
        self, channel: str, queue_size: int = QUEUE_SIZE
    ) -> AsyncIterator[Subscription]:
        """A subscription that receives every message published after this returns; past
        `queue_size` unread messages it is cut off (SubscriberTooSlow)."""
        sub = Subscription(self, channel, queue_size)
        local = self._subscribers.setdefault(channel, set())
        local.add(sub)
        try:
            if len(local) == 1:
                await self._upstream_subscribe(channel)
            yield sub
        finally:
            local.discard(sub)
            if not local:
                del self._subscribers[channel]
                await self._upstream_unsubscribe(channel)

    def local_channels(self) -> int:
        return len(self._subscribers)

    def local_subscriptions(self, channel: str | None = None) -> int:
        """Subscriptions held in this process (to `channel`, or to any)."""
        if channel is not None:
            return len(self._subscribers.get(channel, ()))
        return sum(len(subs) for subs in self._subscribers.values())


class MemoryBroker(Broker):
    """One process: the auth generation is a counter in memory."""

    def __init__(self) -> None:
        super().__init__()
        self._generation = 0

    async def _send(self, channel: str, message: dict[str, Any]) -> None:
        self._fan_out(channel, message)

    async def auth_generation(self) -> int:
        return self._generation

    async def bump_auth_generation(self) -> None:
        self._generation += 1


class RedisBroker(Broker):
    def __init__(self, url: str) -> None:
        super().__init__()
        self.redis = Redis.from_url(url)
        self.pubsub = self.redis.pubsub()
        self._confirmed: dict[str, asyncio.Event] = {}
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def ping(self) -> None:
        await self.redis.ping()

    async def _send(self, channel: str, message: dict[str, Any]) -> None:
        await self.redis.publish(channel, orjson.dumps(message))

    async def auth_generation(self) -> int:
        return int(await self.redis.get(AUTH_GENERATION_KEY) or 0)

    async def bump_auth_generation(self) -> None:
        await self.redis.incr(AUTH_GENERATION_KEY)

    async def _upstream_subscribe(self, channel: str) -> None:
        confirmed = self._confirmed[channel] = asyncio.Event()
        async with self._lock:
            await self.pubsub.subscribe(channel)
            if self._reader is None or self._reader.done():
                self._reader = asyncio.create_task(self._read(), name="redis-broker-reader")
        # Wait for Redis to confirm: only then are later publishes guaranteed to reach us.
        async with asyncio.timeout(5):
            await confirmed.wait()

    async def _upstream_unsubscribe(self, channel: str) -> None:
        async with self._lock:
            # A new local subscriber may have arrived while we waited for the lock.
            if channel not in self._subscribers:
                self._confirmed.pop(channel, None)
                await self.pubsub.unsubscribe(channel)

    async def _read(self) -> None:
        while True:
            try:
                if not self.pubsub.subscribed:
                    await asyncio.sleep(0.05)
                    continue
                message = await self.pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:  # connection trouble: redis-py reconnects and resubscribes
                log.exception("redis pub/sub read failed; retrying")
                await asyncio.sleep(0.5)
                continue
            if message is None:
                continue
            channel = message["channel"].decode()
            if message["type"] == "subscribe":
                event = self._confirmed.get(channel)
                if event is not None:
                    event.set()
            elif message["type"] == "message":
                self._fan_out(channel, orjson.loads(message["data"]))

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self.pubsub.aclose()
        await self.redis.aclose()


_broker: Broker | None = None


def get_broker() -> Broker:
    if _broker is None:
        raise RuntimeError("broker not started")
    return _broker


def set_broker(broker: Broker | None) -> None:
    global _broker
    _broker = broker


def make_broker(redis_url: str | None) -> Broker:
    return RedisBroker(redis_url) if redis_url else MemoryBroker()
