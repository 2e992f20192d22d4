"""Helpers for REST tests: waiting for a task and reading Server-Sent Events."""

import asyncio
from typing import Any

import orjson

from agentplane.models import Task


async def wait_terminal(task_id: str, timeout_s: float = 15) -> Task:
    async with asyncio.timeout(timeout_s):
        while not (task := await Task.get(id=task_id)).status.is_terminal:
            await asyncio.sleep(0.02)
    return task


def parse_sse(text: str) -> list[dict[str, Any]]:
    """Events of an SSE body: each a dict of its fields (`data` JSON-decoded when it can be)."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, Any] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        if "data" in fields:
            try:
                fields["data"] = orjson.loads(fields["data"])
            except orjson.JSONDecodeError:
                pass
        if fields:
            events.append(fields)
    return events
