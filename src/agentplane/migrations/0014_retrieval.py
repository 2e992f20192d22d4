from tortoise import migrations
from tortoise.migrations import operations as ops

# SQLite: the FTS5 index's own term statistics (documents per term), so a query can
# leave out its very common words before FTS5 scores every chunk that contains one.
SQLITE_VOCAB = "CREATE VIRTUAL TABLE IF NOT EXISTS chunk_fts_vocab USING fts5vocab(chunk_fts, row);"


async def fts_vocab(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    client = schema_editor.client
    if client.capabilities.dialect != "postgres":
        await client.execute_script(SQLITE_VOCAB)


class Migration(migrations.Migration):
    dependencies = [('models', '0013_knowledge_more')]

    initial = False

    operations = [
        ops.RunPython(fts_vocab, ops.RunPython.noop),
    ]
