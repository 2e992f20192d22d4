from tortoise import migrations
from tortoise.migrations import operations as ops
from agentplane.core.ids import approval_id
from agentplane.models.approval import ApprovalStatus, OnExpiry
from agentplane.models.task import TaskStatus
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0011_tools')]

    initial = False

    operations = [
        ops.CreateModel(
            name='ApprovalRequest',
            fields=[
                ('id', fields.CharField(primary_key=True, default=approval_id, unique=True, db_index=True, max_length=40)),
                ('tenant', fields.ForeignKeyField('models.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='approval_requests', on_delete=OnDelete.CASCADE)),
                ('task', fields.ForeignKeyField('models.Task', source_field='task_id', db_constraint=True, to_field='id', related_name='approval_requests', on_delete=OnDelete.CASCADE)),
                ('agent_id', fields.CharField(max_length=40)),
                ('step_seq', fields.IntField()),
                ('call_id', fields.CharField(max_length=200)),
                ('tool', fields.CharField(max_length=200)),
                ('arguments', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('arguments_schema', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('risk', fields.CharField(default='high', max_length=32)),
                ('preview', fields.TextField(default='', unique=False)),
                ('status', fields.CharEnumField(default=ApprovalStatus.PENDING, description='PENDING: pending\nAPPROVED: approved\nREJECTED: rejected\nEXPIRED: expired\nCANCELLED: cancelled', enum_type=ApprovalStatus, max_length=16)),
                ('on_expiry', fields.CharEnumField(default=OnExpiry.REJECT, description='REJECT: reject\nFAIL: fail', enum_type=OnExpiry, max_length=16)),
                ('expires_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('decided_by', fields.CharField(null=True, max_length=100)),
                ('decided_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('reason', fields.TextField(null=True, unique=False)),
                ('edited_arguments', fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'approval_request', 'app': 'models', 'unique_together': (('task_id', 'step_seq', 'call_id'),), 'indexes': [Index(fields=['tenant_id', 'id']), Index(fields=['status', 'expires_at'])], 'pk_attr': 'id', 'table_description': "A tool call held for a human's decision."},
            bases=['Model'],
        ),
        ops.AlterField(
            model_name='Task',
            name='status',
            field=fields.CharEnumField(default=TaskStatus.QUEUED, description='QUEUED: queued\nRUNNING: running\nPAUSED: paused\nWAITING_FOR_APPROVAL: waiting_for_approval\nRETRYING: retrying\nCOMPLETED: completed\nFAILED: failed\nCANCELLED: cancelled', enum_type=TaskStatus, max_length=32),
        ),
    ]
