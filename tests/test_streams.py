"""The broker and the replay-then-tail stream, in process (memory or Redis broker)."""

import asyncio

import pytest

from agentplane.auth import Actor
from agentplane.config import Settings
from agentplane.errors import SlowConsumer
from agentplane.resolvers import tasks
from agentplane.subscriptions import events, streams
from agentplane.subscriptions.broker import QUEUE_SIZE, SubscriberTooSlow, get_broker
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
