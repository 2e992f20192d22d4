from tortoise import migrations
from tortoise.migrations import operations as ops
from agentplane.core.ids import chunk_id, document_id, knowledge_base_id, memory_id
from agentplane.models.knowledge import DocumentStatus, MemoryStatus
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

# The lexical index: FTS5 (bm25) on SQLite, a generated tsvector + GIN on PostgreSQL.
SQLITE_FTS = """
CREATE VIRTUAL TABLE chunk_fts USING fts5(text, chunk_id UNINDEXED, knowledge_base_id UNINDEXED);
CREATE TRIGGER chunk_fts_ai AFTER INSERT ON chunk BEGIN
  INSERT INTO chunk_fts(text, chunk_id, knowledge_base_id)
  VALUES (new.text, new.id, new.knowledge_base_id);
END;
CREATE TRIGGER chunk_fts_ad AFTER DELETE ON chunk BEGIN
  DELETE FROM chunk_fts WHERE chunk_id = old.id;
END;
"""
PG_FTS = """
ALTER TABLE chunk ADD COLUMN tsv tsvector
  GENERATED ALWAYS AS (to_tsvector('english', text)) STORED;
CREATE INDEX chunk_tsv_idx ON chunk USING GIN (tsv);
"""


async def lexical_index(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    client = schema_editor.client
    script = PG_FTS if client.capabilities.dialect == "postgres" else SQLITE_FTS
    await client.execute_script(script)


class Migration(migrations.Migration):
    dependencies = [('models', '0008_identity_followup')]

    initial = False

    operations = [
        ops.CreateModel(
            name='KnowledgeBase',
            fields=[
                ('id', fields.CharField(primary_key=True, default=knowledge_base_id, unique=True, db_index=True, max_length=40)),
                ('tenant', fields.ForeignKeyField('models.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='knowledge_bases', on_delete=OnDelete.CASCADE)),
                ('name', fields.CharField(max_length=200)),
                ('description', fields.TextField(default='')),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'knowledge_base', 'app': 'models', 'unique_together': (('tenant', 'name'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Document',
            fields=[
                ('id', fields.CharField(primary_key=True, default=document_id, unique=True, db_index=True, max_length=40)),
                ('knowledge_base', fields.ForeignKeyField('models.KnowledgeBase', source_field='knowledge_base_id', db_constraint=True, to_field='id', related_name='documents', on_delete=OnDelete.CASCADE)),
                ('tenant_id', fields.CharField(db_index=True, max_length=40)),
                ('title', fields.CharField(max_length=500)),
                ('content_type', fields.CharField(max_length=64)),
                ('size_bytes', fields.IntField(default=0)),
                ('status', fields.CharEnumField(default=DocumentStatus.INGESTING, enum_type=DocumentStatus, max_length=16)),
                ('progress', fields.FloatField(default=0.0)),
                ('chunk_count', fields.IntField(default=0)),
                ('error', fields.TextField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'document', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Chunk',
            fields=[
                ('id', fields.CharField(primary_key=True, default=chunk_id, unique=True, db_index=True, max_length=40)),
                ('document', fields.ForeignKeyField('models.Document', source_field='document_id', db_constraint=True, to_field='id', related_name='chunks', on_delete=OnDelete.CASCADE)),
                ('knowledge_base_id', fields.CharField(db_index=True, max_length=40)),
                ('tenant_id', fields.CharField(max_length=40)),
                ('position', fields.IntField()),
                ('text', fields.TextField()),
                ('embedding', fields.BinaryField(null=True)),
            ],
            options={'table': 'chunk', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Memory',
            fields=[
                ('id', fields.CharField(primary_key=True, default=memory_id, unique=True, db_index=True, max_length=40)),
                ('tenant', fields.ForeignKeyField('models.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='memories', on_delete=OnDelete.CASCADE)),
                ('agent_id', fields.CharField(null=True, max_length=40)),
                ('subject', fields.CharField(null=True, max_length=200)),
                ('type', fields.CharField(default='fact', max_length=32)),
                ('text', fields.TextField()),
                ('importance', fields.FloatField(default=0.5)),
                ('source_step_id', fields.CharField(null=True, max_length=40)),
                ('expires_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('conflict_key', fields.CharField(null=True, max_length=200)),
                ('status', fields.CharEnumField(default=MemoryStatus.ACTIVE, enum_type=MemoryStatus, max_length=16)),
                ('superseded_by', fields.CharField(null=True, max_length=40)),
                ('embedding', fields.BinaryField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'memory', 'app': 'models', 'indexes': [Index(fields=['tenant_id', 'agent_id', 'status'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.RunPython(lexical_index, ops.RunPython.noop),
    ]
