from typing import Any

from tortoise import fields
from tortoise.models import Model


class StepPayload(Model):
    """The full payload of a step too large to keep inline (resolvers/step_payloads.py).

    The step row keeps a bounded preview marked `_truncated`, so trace reads and
    streamed events stay small; the full payload is read only when asked for.
    """

    step: fields.OneToOneRelation[Any] = fields.OneToOneField(
        "models.Step", related_name="full_payload", on_delete=fields.CASCADE, primary_key=True
    )
    step_id: str
    payload: fields.JSONField[Any] = fields.JSONField()
    size_bytes = fields.IntField()

    class Meta:
        table = "step_payload"
