"""Loops that must survive errors yet stop when cancelled."""

import asyncio


def stop_if_cancelled() -> None:
    """For a loop's `except Exception`: a cancel that reached a database call can come out
    as a driver error (the rollback on the way out fails and replaces the CancelledError);
    the loop must still stop, or whoever awaits it after cancelling waits forever."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
