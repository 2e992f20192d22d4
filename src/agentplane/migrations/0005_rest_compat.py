from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0004_step_payload')]

    initial = False

    operations = [
        ops.CreateModel(
            name='WorkerQueue',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('models.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='worker_queues', on_delete=OnDelete.CASCADE)),
                ('name', fields.CharField(max_length=100)),
                ('display_name', fields.CharField(default='', max_length=200)),
                ('description', fields.TextField(default='', unique=False)),
                ('max_workers', fields.IntField(null=True)),
                ('heartbeat_interval', fields.IntField(default=60)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'worker_queue', 'app': 'models', 'unique_together': (('tenant', 'name'),), 'pk_attr': 'id', 'table_description': "A named queue that executions are routed to (Kubiya's worker queues)."},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Agent',
            name='display_name',
            field=fields.CharField(default='', max_length=200),
        ),
    ]
