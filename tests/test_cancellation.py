"""Loops that survive errors must still stop when cancelled, even when the cancel comes out of
a database call as a driver error (a failed rollback on the way out replaces it)."""

import asyncio

import pytest

from agentplane.core.cancellation import stop_if_cancelled


async def busy_driver_call() -> None:
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        raise RuntimeError("cannot perform operation: another operation is in progress") from None


async def test_a_cancel_turned_into_a_driver_error_still_stops_the_loop() -> None:
    rounds = 0

    async def poll_forever() -> None:  # the shape of the worker's and maintenance loops
        nonlocal rounds
        while True:
            rounds += 1
            try:
                await busy_driver_call()
            except Exception:
                stop_if_cancelled()

    loop = asyncio.create_task(poll_forever())
    await asyncio.sleep(0.01)
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(loop, 5)
    assert rounds == 1


async def test_an_ordinary_error_keeps_the_loop_going() -> None:
    errors = 0

    async def poll() -> None:
        nonlocal errors
        for _ in range(3):
            try:
                raise ConnectionError("database briefly away")
            except Exception:
                stop_if_cancelled()
                errors += 1

    await poll()
    assert errors == 3
