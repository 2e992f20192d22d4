from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0002_run_control')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Task',
            name='expiries',
            field=fields.IntField(default=0),
        ),
    ]
