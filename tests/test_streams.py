"""The broker and the replay-then-tail stream, in process (memory or Redis broker)."""

import asyncio

import pytest

from agentplane.core.config import Settings
from agentplane.core.errors import SlowConsumer
from agentplane.resolvers import tasks
from agentplane.resolvers.auth import Actor
from agentplane.subscriptions import events, streams
from agentplane.subscriptions.broker import QUEUE_SIZE, RedisBroker, SubscriberTooSlow, get_broker
from tests.support.factories import make_agent, make_tenant


async def test_a_slow_subscriber_is_cut_off_without_delaying_a_fast_one(
    services: Settings,
) -> None:
    broker = get_broker()
    async with broker.subscribe("test:fanout") as fast, broker.subscribe("test:fanout") as slow:
        received = []

        async def consume() -> None:
            while len(received) < QUEUE_SIZE + 10:
                message = await fast.get(timeout=5)
                assert message is not None
                received.append(message["n"])

        consumer = asyncio.create_task(consume())
        for n in range(QUEUE_SIZE + 10):
            await broker.publish("test:fanout", {"n": n})
            await asyncio.sleep(0)  # one loop turn per event: the fast consumer keeps up
        await asyncio.wait_for(consumer, 10)
        assert received == list(range(QUEUE_SIZE + 10))
        with pytest.raises(SubscriberTooSlow):
            await slow.get(timeout=1)
    assert broker.local_channels() == 0


async def test_a_stream_that_falls_behind_is_told_where_to_resume(services: Settings) -> None:
    tenant = await make_tenant("acme")
    agent = await make_agent(tenant)
    actor = Actor(kind="token", role="viewer", tenant_id=tenant.id)
    writer = Actor(kind="token", role="operator", tenant_id=tenant.id)
    task = await tasks.submit_task(writer, agent_id=agent.id, query="never runs")
    stream = streams.task_events(actor, task.id, after_seq=None)
    first = await anext(stream)
    assert first.seq == 1
    # the subscriber stops reading while far more events arrive than its buffer holds
    step = events.step_event(first)
    for seq in range(2, QUEUE_SIZE + 10):
        await get_broker().publish(events.task_channel(task.id), {**step, "seq": seq})
    await asyncio.sleep(0.5)  # let a Redis broker deliver them
    with pytest.raises(SlowConsumer) as failure:
        await anext(stream)
    assert failure.value.code == "SLOW_CONSUMER"
    assert failure.value.details == {"lastSeq": 1}


async def test_one_upstream_subscription_per_channel_per_process(services: Settings) -> None:
    broker = get_broker()
    channel = "agentplane:test:shared"

    async def upstream() -> int:
        if isinstance(broker, RedisBroker):
            counts = await broker.redis.pubsub_numsub(channel)
            return int(counts[0][1])
        return 1 if channel in broker._subscribers else 0

    async with broker.subscribe(channel), broker.subscribe(channel), broker.subscribe(channel):
        assert len(broker._subscribers[channel]) == 3
        assert await upstream() == 1
        await broker.publish(channel, {"n": 1})
    await asyncio.sleep(0.1)
    assert await upstream() == 0
    assert channel not in broker._subscribers
