from tortoise import migrations
from tortoise.migrations import operations as ops
from agentplane.core.ids import agent_id, step_id, task_id, tenant_id, token_id, usage_id
from agentplane.models.agent import AgentState
from agentplane.models.task import StepKind, TaskStatus
from agentplane.models.tenant import TenantPhase
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='Tenant',
            fields=[
                ('id', fields.CharField(primary_key=True, default=tenant_id, unique=True, db_index=True, max_length=40)),
                ('name', fields.CharField(unique=True, max_length=63)),
                ('display_name', fields.CharField(default='', max_length=200)),
                ('email', fields.CharField(default='', max_length=320)),
                ('team', fields.CharField(default='', max_length=200)),
                ('phase', fields.CharEnumField(default=TenantPhase.ACTIVE, description='ACTIVE: active\nSUSPENDED: suspended\nDELETED: deleted', enum_type=TenantPhase, max_length=16)),
                ('monthly_budget_usd', fields.DecimalField(null=True, max_digits=20, decimal_places=10)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'tenant', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='AccessToken',
            fields=[
                ('id', fields.CharField(primary_key=True, default=token_id, unique=True, db_index=True, max_length=40)),
                ('tenant', fields.ForeignKeyField('models.Tenant', source_field='tenant_id', null=True, db_constraint=True, to_field='id', related_name='tokens', on_delete=OnDelete.CASCADE)),
                ('name', fields.CharField(max_length=200)),
                ('role', fields.CharField(max_length=32)),
                ('token_hash', fields.CharField(unique=True, max_length=64)),
                ('prefix', fields.CharField(max_length=16)),
                ('expires_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('revoked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'access_token', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Agent',
            fields=[
                ('id', fields.CharField(primary_key=True, default=agent_id, unique=True, db_index=True, max_length=40)),
                ('tenant', fields.ForeignKeyField('models.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='agents', on_delete=OnDelete.CASCADE)),
                ('name', fields.CharField(max_length=200)),
                ('description', fields.TextField(default='', unique=False)),
                ('model', fields.CharField(max_length=200)),
                ('system_prompt', fields.TextField(default='', unique=False)),
                ('tools', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('config', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('state', fields.CharEnumField(default=AgentState.ACTIVE, description='DRAFT: draft\nACTIVE: active\nPAUSED: paused\nARCHIVED: archived', enum_type=AgentState, max_length=16)),
                ('max_steps', fields.IntField(default=8)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'agent', 'app': 'models', 'unique_together': (('tenant', 'name'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Task',
            fields=[
                ('id', fields.CharField(primary_key=True, default=task_id, unique=True, db_index=True, max_length=40)),
                ('tenant', fields.ForeignKeyField('models.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='tasks', on_delete=OnDelete.CASCADE)),
                ('agent', fields.ForeignKeyField('models.Agent', source_field='agent_id', db_constraint=True, to_field='id', related_name='tasks', on_delete=OnDelete.CASCADE)),
                ('status', fields.CharEnumField(default=TaskStatus.QUEUED, description='QUEUED: queued\nRUNNING: running\nPAUSED: paused\nRETRYING: retrying\nCOMPLETED: completed\nFAILED: failed\nCANCELLED: cancelled', enum_type=TaskStatus, max_length=16)),
                ('query', fields.TextField(unique=False)),
                ('output', fields.TextField(null=True, unique=False)),
                ('error', fields.TextField(null=True, unique=False)),
                ('metadata', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('cost_usd', fields.DecimalField(default=0, max_digits=20, decimal_places=10)),
                ('last_seq', fields.IntField(default=0)),
                ('attempt', fields.IntField(default=0)),
                ('worker_id', fields.CharField(null=True, max_length=100)),
                ('cancel_requested', fields.BooleanField(default=False)),
                ('created_by', fields.CharField(null=True, max_length=40)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('started_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'task', 'app': 'models', 'indexes': [Index(fields=['status', 'id']), Index(fields=['tenant_id', 'id']), Index(fields=['agent_id', 'id'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Step',
            fields=[
                ('id', fields.CharField(primary_key=True, default=step_id, unique=True, db_index=True, max_length=40)),
                ('task', fields.ForeignKeyField('models.Task', source_field='task_id', db_constraint=True, to_field='id', related_name='steps', on_delete=OnDelete.CASCADE)),
                ('seq', fields.IntField()),
                ('kind', fields.CharEnumField(description='PROVIDER_CALL: PROVIDER_CALL\nTOOL_CALL: TOOL_CALL\nMEMORY_HIT: MEMORY_HIT\nRETRIEVAL_HIT: RETRIEVAL_HIT\nAUDIT: AUDIT\nSTATUS_CHANGE: STATUS_CHANGE', enum_type=StepKind, max_length=16)),
                ('payload', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('model', fields.CharField(null=True, max_length=200)),
                ('input_tokens', fields.IntField(null=True)),
                ('output_tokens', fields.IntField(null=True)),
                ('latency_ms', fields.IntField(null=True)),
                ('cost_usd', fields.DecimalField(null=True, max_digits=20, decimal_places=10)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'step', 'app': 'models', 'unique_together': (('task', 'seq'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='UsageRecord',
            fields=[
                ('id', fields.CharField(primary_key=True, default=usage_id, unique=True, db_index=True, max_length=40)),
                ('tenant', fields.ForeignKeyField('models.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='usage', on_delete=OnDelete.CASCADE)),
                ('agent_id', fields.CharField(max_length=40)),
                ('task_id', fields.CharField(max_length=40)),
                ('step_id', fields.CharField(max_length=40)),
                ('model', fields.CharField(max_length=200)),
                ('input_tokens', fields.IntField()),
                ('output_tokens', fields.IntField()),
                ('cost_usd', fields.DecimalField(max_digits=20, decimal_places=10)),
                ('priced', fields.BooleanField()),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'usage_record', 'app': 'models', 'indexes': [Index(fields=['tenant_id', 'created_at'])], 'pk_attr': 'id', 'table_description': 'Tokens and price of one provider call: the source of every spend figure.'},
            bases=['Model'],
        ),
    ]
