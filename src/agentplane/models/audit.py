from tortoise import fields
from tortoise.models import Model

from agentplane.core import ids


class AuditEvent(Model):
    """Who did what to which resource, with what outcome (a purged tenant's trail stays)."""

    id = fields.CharField(max_length=40, primary_key=True, default=ids.audit_id)
    created_at = fields.DatetimeField(auto_now_add=True)
    actor = fields.CharField(max_length=100)  # user, token or "admin_token" subject
    actor_kind = fields.CharField(max_length=16)
    role = fields.CharField(max_length=32, null=True)
    tenant_id = fields.CharField(max_length=40, null=True)
    action = fields.CharField(max_length=64)
    resource = fields.CharField(max_length=200, default="")
    outcome = fields.CharField(max_length=16)  # success | denied | failure
    request_id = fields.CharField(max_length=64, null=True)
    task_id = fields.CharField(max_length=40, null=True)
    details: fields.JSONField[dict] = fields.JSONField(default=dict)

    class Meta:
        table = "audit_event"
        indexes = (("tenant_id", "id"), ("action", "id"))
