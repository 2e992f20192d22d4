from tortoise import migrations
from tortoise.migrations import operations as ops
from agentplane.core.ids import audit_id, budget_id, device_grant_id, oidc_login_id, provider_key_id, reservation_id, role_assignment_id, session_id, user_id
from agentplane.models.budget import BudgetScope, current_window
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0005_rest_compat')]

    initial = False

    operations = [
        ops.CreateModel(
            name='AuditEvent',
            fields=[
                ('id', fields.CharField(primary_key=True, default=audit_id, unique=True, db_index=True, max_length=40)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('actor', fields.CharField(max_length=100)),
                ('actor_kind', fields.CharField(max_length=16)),
                ('role', fields.CharField(null=True, max_length=32)),
                ('tenant_id', fields.CharField(null=True, max_length=40)),
                ('action', fields.CharField(max_length=64)),
                ('resource', fields.CharField(default='', max_length=200)),
                ('outcome', fields.CharField(max_length=16)),
                ('request_id', fields.CharField(null=True, max_length=64)),
                ('task_id', fields.CharField(null=True, max_length=40)),
                ('details', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
            ],
            options={'table': 'audit_event', 'app': 'models', 'indexes': [Index(fields=['tenant_id', 'id']), Index(fields=['action', 'id'])], 'pk_attr': 'id', 'table_description': "Who did what to which resource, with what outcome (a purged tenant's trail stays)."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Budget',
            fields=[
                ('id', fields.CharField(primary_key=True, default=budget_id, unique=True, db_index=True, max_length=40)),
                ('scope', fields.CharEnumField(description='GLOBAL: global\nTENANT: tenant\nACCOUNT: account\nAGENT: agent', enum_type=BudgetScope, max_length=16)),
                ('scope_key', fields.CharField(unique=True, max_length=120)),
                ('tenant_id', fields.CharField(null=True, max_length=40)),
                ('account', fields.CharField(null=True, max_length=40)),
                ('agent_id', fields.CharField(null=True, max_length=40)),
                ('limit_units', fields.BigIntField()),
                ('period', fields.CharField(max_length=7)),
                ('spent_units', fields.BigIntField(default=0)),
                ('reserved_units', fields.BigIntField(default=0)),
                ('alert_level', fields.IntField(default=0)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'budget', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='DeviceGrant',
            fields=[
                ('id', fields.CharField(primary_key=True, default=device_grant_id, unique=True, db_index=True, max_length=40)),
                ('device_code_hash', fields.CharField(unique=True, max_length=64)),
                ('user_code', fields.CharField(unique=True, max_length=16)),
                ('status', fields.CharField(default='pending', max_length=16)),
                ('user_id', fields.CharField(null=True, max_length=40)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'device_grant', 'app': 'models', 'pk_attr': 'id', 'table_description': 'RFC 8628 device authorization: pending, approved (browser) then delivered (poll).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='OidcLogin',
            fields=[
                ('id', fields.CharField(primary_key=True, default=oidc_login_id, unique=True, db_index=True, max_length=40)),
                ('state', fields.CharField(unique=True, max_length=100)),
                ('nonce', fields.CharField(max_length=100)),
                ('code_verifier', fields.CharField(max_length=200)),
                ('return_to', fields.CharField(default='/', max_length=500)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'oidc_login', 'app': 'models', 'pk_attr': 'id', 'table_description': 'One OIDC authorization-code attempt: state, nonce and the PKCE verifier.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ProviderKey',
            fields=[
                ('id', fields.CharField(primary_key=True, default=provider_key_id, unique=True, db_index=True, max_length=40)),
                ('tenant', fields.ForeignKeyField('models.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='provider_keys', on_delete=OnDelete.CASCADE)),
                ('provider', fields.CharField(max_length=64)),
                ('ciphertext', fields.TextField(unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'provider_key', 'app': 'models', 'unique_together': (('tenant', 'provider'),), 'pk_attr': 'id', 'table_description': "A tenant's API key for a model provider, encrypted at rest (Fernet)."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Reservation',
            fields=[
                ('id', fields.CharField(primary_key=True, default=reservation_id, unique=True, db_index=True, max_length=40)),
                ('task_id', fields.CharField(max_length=40)),
                ('period', fields.CharField(max_length=7)),
                ('amount_units', fields.BigIntField()),
                ('budget_ids', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('settled_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'budget_reservation', 'app': 'models', 'indexes': [Index(fields=['settled_at', 'created_at'])], 'pk_attr': 'id', 'table_description': 'Worst-case cost of one provider call, held against budgets until settled.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='RoleDefinition',
            fields=[
                ('name', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=32)),
                ('description', fields.TextField(default='', unique=False)),
                ('permissions', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('scope', fields.CharField(default='any', max_length=16)),
                ('builtin', fields.BooleanField(default=True)),
            ],
            options={'table': 'role_definition', 'app': 'models', 'pk_attr': 'name', 'table_description': 'A role as data: its name and the permissions it grants (seeded at start-up).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='User',
            fields=[
                ('id', fields.CharField(primary_key=True, default=user_id, unique=True, db_index=True, max_length=40)),
                ('email', fields.CharField(unique=True, max_length=320)),
                ('display_name', fields.CharField(default='', max_length=200)),
                ('password_hash', fields.CharField(null=True, max_length=200)),
                ('oidc_issuer', fields.CharField(null=True, max_length=500)),
                ('oidc_subject', fields.CharField(null=True, max_length=255)),
                ('disabled', fields.BooleanField(default=False)),
                ('owner', fields.BooleanField(null=True, unique=True)),
                ('last_login_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'user_account', 'app': 'models', 'unique_together': (('oidc_issuer', 'oidc_subject'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='RoleAssignment',
            fields=[
                ('id', fields.CharField(primary_key=True, default=role_assignment_id, unique=True, db_index=True, max_length=40)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', db_constraint=True, to_field='id', related_name='assignments', on_delete=OnDelete.CASCADE)),
                ('role', fields.CharField(max_length=32)),
                ('tenant', fields.ForeignKeyField('models.Tenant', source_field='tenant_id', null=True, db_constraint=True, to_field='id', related_name='assignments', on_delete=OnDelete.CASCADE)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'role_assignment', 'app': 'models', 'unique_together': (('user', 'tenant'),), 'pk_attr': 'id', 'table_description': 'A principal (user) holds a role at a scope: the platform (tenant null) or a tenant.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Session',
            fields=[
                ('id', fields.CharField(primary_key=True, default=session_id, unique=True, db_index=True, max_length=40)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', db_constraint=True, to_field='id', related_name='sessions', on_delete=OnDelete.CASCADE)),
                ('secret_hash', fields.CharField(unique=True, max_length=64)),
                ('csrf_token', fields.CharField(max_length=64)),
                ('method', fields.CharField(max_length=16)),
                ('user_agent', fields.CharField(default='', max_length=300)),
                ('ip', fields.CharField(default='', max_length=64)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('last_seen_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('revoked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'session', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A server-side browser session: the cookie holds a secret whose hash is stored.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='AccessToken',
            name='created_by',
            field=fields.CharField(null=True, max_length=40),
        ),
        ops.AddField(
            model_name='AccessToken',
            name='owner_user_id',
            field=fields.CharField(null=True, max_length=40),
        ),
        ops.AddField(
            model_name='Tenant',
            name='deleted_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Tenant',
            name='suspended_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='UsageRecord',
            name='period',
            field=fields.CharField(default=current_window, max_length=7),
        ),
        ops.AddField(
            model_name='UsageRecord',
            name='pricing_version',
            field=fields.CharField(default='2026-11-01', max_length=32),
        ),
    ]
