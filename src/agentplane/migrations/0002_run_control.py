from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0001_initial')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Agent',
            name='max_concurrent_tasks',
            field=fields.IntField(null=True),
        ),
        ops.AddField(
            model_name='Agent',
            name='published_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Agent',
            name='timeout_s',
            field=fields.IntField(null=True),
        ),
        ops.AddField(
            model_name='Agent',
            name='version',
            field=fields.IntField(default=1),
        ),
        ops.AddField(
            model_name='Task',
            name='lease_expires_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Task',
            name='pause_requested',
            field=fields.BooleanField(default=False),
        ),
        ops.AddField(
            model_name='Task',
            name='status_reason',
            field=fields.CharField(null=True, max_length=200),
        ),
    ]
