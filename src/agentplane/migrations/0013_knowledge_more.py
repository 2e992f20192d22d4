from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

# SQLite: key the FTS5 rows on the chunk's rowid, so deleting a chunk is one rowid
# lookup instead of a scan of the whole FTS table (chunk_id is UNINDEXED there).
SQLITE_FTS = """
DROP TRIGGER IF EXISTS chunk_fts_ai;
DROP TRIGGER IF EXISTS chunk_fts_ad;
DROP TABLE IF EXISTS chunk_fts;
CREATE VIRTUAL TABLE chunk_fts USING fts5(text, chunk_id UNINDEXED, knowledge_base_id UNINDEXED);
INSERT INTO chunk_fts(rowid, text, chunk_id, knowledge_base_id)
  SELECT rowid, text, id, knowledge_base_id FROM chunk;
CREATE TRIGGER chunk_fts_ai AFTER INSERT ON chunk BEGIN
  INSERT INTO chunk_fts(rowid, text, chunk_id, knowledge_base_id)
  VALUES (new.rowid, new.text, new.id, new.knowledge_base_id);
END;
CREATE TRIGGER chunk_fts_ad AFTER DELETE ON chunk BEGIN
  DELETE FROM chunk_fts WHERE rowid = old.rowid;
END;
"""


async def rowid_keyed_fts(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    client = schema_editor.client
    if client.capabilities.dialect != "postgres":
        await client.execute_script(SQLITE_FTS)


class Migration(migrations.Migration):
    dependencies = [('models', '0012_approvals')]

    initial = False

    operations = [
        # The vector cache's fingerprint (count and newest ID of a base) from the index alone.
        ops.AddIndex(
            model_name='Chunk',
            index=Index(fields=['knowledge_base_id', 'id']),
        ),
        ops.RunPython(rowid_keyed_fts, ops.RunPython.noop),
    ]
