from tortoise import migrations
from tortoise.migrations import operations as ops
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0003_lease_expiries')]

    initial = False

    operations = [
        ops.CreateModel(
            name='StepPayload',
            fields=[
                ('step', fields.OneToOneField('models.Step', source_field='step_id', primary_key=True, db_index=True, db_constraint=True, to_field='id', related_name='full_payload', on_delete=OnDelete.CASCADE)),
                ('payload', fields.JSONField(encoder=JSON_DUMPS, decoder=loads)),
                ('size_bytes', fields.IntField()),
            ],
            options={'table': 'step_payload', 'app': 'models', 'pk_attr': 'step_id', 'table_description': 'The full payload of a step too large to keep inline.'},
            bases=['Model'],
        ),
    ]
