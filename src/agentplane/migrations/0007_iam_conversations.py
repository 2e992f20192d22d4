from tortoise import migrations
from tortoise.migrations import operations as ops
from orjson import loads
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0006_identity_budgets_audit')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Task',
            name='conversation_id',
            field=fields.CharField(null=True, max_length=200),
        ),
        ops.AddField(
            model_name='Task',
            name='history',
            field=fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads),
        ),
        ops.AddIndex(
            model_name='Task',
            index=Index(fields=['agent_id', 'conversation_id', 'id']),
        ),
        ops.AddField(
            model_name='User',
            name='not_after',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
    ]
