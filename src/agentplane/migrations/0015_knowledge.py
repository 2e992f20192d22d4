from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0014_retrieval')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Document',
            name='attempts',
            field=fields.IntField(default=0),
        ),
        ops.AddField(
            model_name='Document',
            name='chunks_indexed',
            field=fields.IntField(default=0),
        ),
        ops.AddField(
            model_name='Document',
            name='error_code',
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.AddField(
            model_name='Document',
            name='lease_expires_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Document',
            name='source',
            field=fields.TextField(null=True, unique=False),
        ),
    ]
