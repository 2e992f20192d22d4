from tortoise import migrations
from tortoise.migrations import operations as ops
from agentplane.core.ids import mcp_server_id, tool_id
from agentplane.models.tool import McpServerStatus, McpTransport, ToolSource
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index


class Migration(migrations.Migration):
    dependencies = [('models', '0010_knowledge_memory')]

    initial = False

    operations = [
        ops.CreateModel(
            name='McpServer',
            fields=[
                ('id', fields.CharField(primary_key=True, default=mcp_server_id, unique=True, db_index=True, max_length=40)),
                ('tenant', fields.ForeignKeyField('models.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='mcp_servers', on_delete=OnDelete.CASCADE)),
                ('name', fields.CharField(max_length=64)),
                ('transport', fields.CharEnumField(enum_type=McpTransport, max_length=8)),
                ('command', fields.CharField(null=True, max_length=1000)),
                ('args', fields.JSONField(default=list)),
                ('url', fields.CharField(null=True, max_length=2000)),
                ('secret_headers', fields.TextField(null=True)),
                ('secret_header_names', fields.JSONField(default=list)),
                ('timeout_s', fields.FloatField(default=30.0)),
                ('status', fields.CharEnumField(default=McpServerStatus.UNKNOWN, enum_type=McpServerStatus, max_length=16)),
                ('status_message', fields.TextField(default='')),
                ('protocol_version', fields.CharField(null=True, max_length=32)),
                ('server_name', fields.CharField(null=True, max_length=200)),
                ('server_version', fields.CharField(null=True, max_length=100)),
                ('refreshed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'mcp_server', 'app': 'models', 'unique_together': (('tenant', 'name'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Tool',
            fields=[
                ('id', fields.CharField(primary_key=True, default=tool_id, unique=True, db_index=True, max_length=40)),
                ('tenant', fields.ForeignKeyField('models.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='tools', on_delete=OnDelete.CASCADE)),
                ('name', fields.CharField(max_length=64)),
                ('source', fields.CharEnumField(enum_type=ToolSource, max_length=8)),
                ('description', fields.TextField(default='')),
                ('input_schema', fields.JSONField(default=dict)),
                ('enabled', fields.BooleanField(default=True)),
                ('requires_approval', fields.BooleanField(default=False)),
                ('risk', fields.CharField(default='low', max_length=16)),
                ('server', fields.ForeignKeyField('models.McpServer', source_field='server_id', null=True, db_constraint=True, to_field='id', related_name='tools', on_delete=OnDelete.CASCADE)),
                ('remote_name', fields.CharField(null=True, max_length=200)),
                ('annotations', fields.JSONField(default=dict)),
                ('url', fields.CharField(null=True, max_length=2000)),
                ('method', fields.CharField(null=True, max_length=8)),
                ('secret_headers', fields.TextField(null=True)),
                ('secret_header_names', fields.JSONField(default=list)),
                ('timeout_s', fields.FloatField(default=30.0)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'tool', 'app': 'models', 'unique_together': (('tenant', 'name'),), 'indexes': [Index(fields=['server_id', 'remote_name'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
