from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

# Existing users confined to one tenant (no platform role) were made in it.
BACKFILL = """
UPDATE user_account SET home_tenant_id = (
    SELECT MIN(r.tenant_id) FROM role_assignment r WHERE r.user_id = user_account.id
)
WHERE NOT EXISTS (
    SELECT 1 FROM role_assignment r WHERE r.user_id = user_account.id AND r.tenant_id IS NULL
)
AND (SELECT COUNT(DISTINCT r.tenant_id) FROM role_assignment r
     WHERE r.user_id = user_account.id) = 1
"""


class Migration(migrations.Migration):
    dependencies = [('models', '0007_iam_conversations')]

    initial = False

    operations = [
        ops.AddField(
            model_name='User',
            name='home_tenant',
            field=fields.ForeignKeyField('models.Tenant', source_field='home_tenant_id', null=True, db_constraint=True, to_field='id', related_name='home_users', on_delete=OnDelete.SET_NULL),
        ),
        ops.AddField(
            model_name='AccessToken',
            name='owner',
            field=fields.CharField(null=True, max_length=200),
        ),
        ops.RunSQL(BACKFILL, reverse_sql=ops.RunSQL.noop),
    ]
