import uuid

from tortoise import fields
from tortoise.models import Model

from agentplane.models.tenant import Tenant


class WorkerQueue(Model):
    """A named queue that executions are routed to (Kubiya's worker queues).

    IDs are UUIDs because Kubiya callers validate them as such. Every worker
    currently serves every queue; the queue is recorded on each task it routed.
    """

    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    tenant: fields.ForeignKeyRelation[Tenant] = fields.ForeignKeyField(
        "models.Tenant", related_name="worker_queues", on_delete=fields.CASCADE
    )
    tenant_id: str
    name = fields.CharField(max_length=100)
    display_name = fields.CharField(max_length=200, default="")
    description = fields.TextField(default="")
    max_workers = fields.IntField(null=True)
    heartbeat_interval = fields.IntField(default=60)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "worker_queue"
        unique_together = (("tenant", "name"),)
