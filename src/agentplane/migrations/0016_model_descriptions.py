from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0015_knowledge')]

    initial = False

    operations = [
        ops.AlterModelOptions(
            name='StepPayload',
            options={'table': 'step_payload', 'app': 'models', 'pk_attr': 'step_id', 'table_description': 'The full payload of a step too large to keep inline (resolvers/step_payloads.py).'},
        ),
        ops.AlterModelOptions(
            name='Tool',
            options={'table': 'tool', 'app': 'models', 'unique_together': (('tenant', 'name'),), 'indexes': [Index(fields=['server_id', 'remote_name'])], 'pk_attr': 'id', 'table_description': 'An HTTP tool, or one tool of an MCP server; `name` is what agents and models call it.'},
        ),
    ]
