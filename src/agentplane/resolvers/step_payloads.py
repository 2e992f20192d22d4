"""Large step payloads: stored whole, kept out of every trace read.

A step whose JSON payload exceeds `STEP_INLINE_BYTES` keeps a bounded preview in the
step row (long strings cut at `PREVIEW_CHARS`, large nested values replaced by their
size) marked `_truncated: {sizeBytes, previewChars}`; the whole payload goes to
`step_payload` and is served by `Step.fullPayload`. Nothing is cut silently.
"""

from typing import Any

import orjson

from agentplane.models import StepPayload
from agentplane.resolvers.auth import Actor
from agentplane.resolvers.permissions import Perm, is_platform, require

STEP_INLINE_BYTES = 8 * 1024
PREVIEW_CHARS = 1024
MARKER = "_truncated"


def split(payload: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None, int]:
    """(what the step row keeps, the full payload to store apart or None, its size)."""
    size = len(orjson.dumps(payload))
    if size <= STEP_INLINE_BYTES:
        return payload, None, size
    preview: dict[str, Any] = {}
    for key, value in payload.items():
        if isinstance(value, str) and len(value) > PREVIEW_CHARS:
            preview[key] = value[:PREVIEW_CHARS]
        elif isinstance(value, dict | list) and len(orjson.dumps(value)) > PREVIEW_CHARS:
            preview[key] = f"<{len(orjson.dumps(value))} bytes>"
        else:
            preview[key] = value
    marker = {"sizeBytes": size, "previewChars": PREVIEW_CHARS}
    if len(orjson.dumps(preview)) > STEP_INLINE_BYTES:  # many small keys: the marker alone
        preview = {}
    preview[MARKER] = marker
    return preview, payload, size


def is_truncated(payload: Any) -> bool:
    return isinstance(payload, dict) and MARKER in payload


async def load_full_payloads(actor: Actor | None, step_ids: list[str]) -> list[Any]:
    """Full payloads by step id, for DataLoaders; a step of another tenant gives None."""
    actor = require(actor, Perm.TASK_READ)
    qs = StepPayload.filter(step_id__in=step_ids)
    if not is_platform(actor):
        qs = qs.filter(step__task__tenant_id=actor.tenant_id)
    found = {row.step_id: row.payload for row in await qs}
    return [found.get(step_id) for step_id in step_ids]
