"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from jobtrack.store.tables import UTCDateTime as Timestamp

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Types frozen as they were at this revision.
Id = sa.String(length=36).with_variant(postgresql.UUID(as_uuid=False), "postgresql")
Json = sa.JSON(none_as_null=True).with_variant(postgresql.JSON(none_as_null=True), "postgresql")
EventId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

NOTIFY_FUNCTION = """
CREATE FUNCTION jobtrack_notify_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- one wake-up per statement; listeners read the stored events themselves
    PERFORM pg_notify('jobtrack_events', '');
    RETURN NULL;
END $$
"""


def upgrade() -> None:
    op.create_table('cursors',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('event_id', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', Timestamp(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_cursors'))
    )
    op.create_table('events',
    sa.Column('id', EventId, autoincrement=True, nullable=False),
    sa.Column('tenant', sa.String(length=100), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('at', Timestamp(), nullable=False),
    sa.Column('job_id', Id, nullable=True),
    sa.Column('flow_id', Id, nullable=True),
    sa.Column('queue_name', sa.String(length=200), nullable=True),
    sa.Column('from_status', sa.String(length=16), nullable=True),
    sa.Column('to_status', sa.String(length=16), nullable=True),
    sa.Column('step', sa.String(length=200), nullable=True),
    sa.Column('attempt', sa.Integer(), nullable=True),
    sa.Column('actor', sa.String(length=200), nullable=True),
    sa.Column('data', Json, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_flow', ['flow_id', 'id'], unique=False, postgresql_where=sa.text('flow_id IS NOT NULL'), sqlite_where=sa.text('flow_id IS NOT NULL'))
        batch_op.create_index('ix_events_job', ['job_id', 'id'], unique=False, postgresql_where=sa.text('job_id IS NOT NULL'), sqlite_where=sa.text('job_id IS NOT NULL'))

    op.create_table('flows',
    sa.Column('id', Id, nullable=False),
    sa.Column('tenant', sa.String(length=100), nullable=False),
    sa.Column('flowname', sa.String(length=200), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('queue_name', sa.String(length=200), nullable=False),
    sa.Column('root_job_id', Id, nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('pending', sa.Integer(), nullable=False),
    sa.Column('running', sa.Integer(), nullable=False),
    sa.Column('completed', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('cancelled', sa.Integer(), nullable=False),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('result', Json, nullable=True),
    sa.Column('error', Json, nullable=True),
    sa.Column('created_at', Timestamp(), nullable=False),
    sa.Column('updated_at', Timestamp(), nullable=False),
    sa.Column('started_at', Timestamp(), nullable=True),
    sa.Column('completed_at', Timestamp(), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'running', 'completed', 'failed', 'cancelled')", name=op.f('ck_flows_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_flows'))
    )
    with op.batch_alter_table('flows', schema=None) as batch_op:
        batch_op.create_index('ix_flows_tenant_flowname', ['tenant', 'flowname', 'id'], unique=False)
        batch_op.create_index('ix_flows_tenant_id', ['tenant', 'id'], unique=False)

    op.create_table('jobs',
    sa.Column('id', Id, nullable=False),
    sa.Column('tenant', sa.String(length=100), nullable=False),
    sa.Column('queue_name', sa.String(length=200), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('step', sa.String(length=200), nullable=False),
    sa.Column('data', Json, nullable=False),
    sa.Column('result', Json, nullable=True),
    sa.Column('error', Json, nullable=True),
    sa.Column('stats', Json, nullable=True),
    sa.Column('progress_done', sa.Float(), nullable=True),
    sa.Column('progress_total', sa.Float(), nullable=True),
    sa.Column('phase_count', sa.SmallInteger(), nullable=False),
    sa.Column('flow_id', Id, nullable=True),
    sa.Column('parent_job_id', Id, nullable=True),
    sa.Column('children_left', sa.Integer(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('run_at', Timestamp(), nullable=False),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=True),
    sa.Column('worker_id', sa.String(length=200), nullable=True),
    sa.Column('lease_expires_at', Timestamp(), nullable=True),
    sa.Column('created_at', Timestamp(), nullable=False),
    sa.Column('updated_at', Timestamp(), nullable=False),
    sa.Column('started_at', Timestamp(), nullable=True),
    sa.Column('completed_at', Timestamp(), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'running', 'completed', 'failed', 'cancelled')", name=op.f('ck_jobs_status')),
    sa.CheckConstraint('attempt >= 1 AND max_attempts >= 1', name=op.f('ck_jobs_attempts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs'))
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index('ix_jobs_flow', ['flow_id', 'id'], unique=False, postgresql_where=sa.text('flow_id IS NOT NULL'), sqlite_where=sa.text('flow_id IS NOT NULL'))
        batch_op.create_index('ix_jobs_idempotency', ['tenant', 'idempotency_key'], unique=True, postgresql_where=sa.text('idempotency_key IS NOT NULL'), sqlite_where=sa.text('idempotency_key IS NOT NULL'))
        batch_op.create_index('ix_jobs_lease', ['lease_expires_at'], unique=False, postgresql_where=sa.text("status = 'running'"), sqlite_where=sa.text("status = 'running'"))
        batch_op.create_index('ix_jobs_parent', ['parent_job_id'], unique=False, postgresql_where=sa.text('parent_job_id IS NOT NULL'), sqlite_where=sa.text('parent_job_id IS NOT NULL'))
        batch_op.create_index('ix_jobs_tenant_id', ['tenant', 'id'], unique=False)
        batch_op.create_index(
            'ix_jobs_claim',
            ['queue_name', sa.text('priority DESC'), 'run_at', 'id'],
            unique=False,
            postgresql_where=sa.text("status = 'pending' AND children_left = 0"),
            sqlite_where=sa.text("status = 'pending' AND children_left = 0"),
        )

    op.create_table('rate_limits',
    sa.Column('key_id', Id, nullable=False),
    sa.Column('window_start', sa.BigInteger(), nullable=False),
    sa.Column('used', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('key_id', 'window_start', name=op.f('pk_rate_limits'))
    )
    op.create_table('tenants',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('created_at', Timestamp(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_tenants'))
    )
    op.create_table('webhooks',
    sa.Column('id', Id, nullable=False),
    sa.Column('tenant', sa.String(length=100), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('events', Json, nullable=False),
    sa.Column('secret', sa.String(length=200), nullable=False),
    sa.Column('flow_id', Id, nullable=True),
    sa.Column('queue_name', sa.String(length=200), nullable=True),
    sa.Column('created_at', Timestamp(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhooks'))
    )
    with op.batch_alter_table('webhooks', schema=None) as batch_op:
        batch_op.create_index('ix_webhooks_tenant', ['tenant'], unique=False)

    op.create_table('api_keys',
    sa.Column('id', Id, nullable=False),
    sa.Column('tenant', sa.String(length=100), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('admin', sa.Boolean(), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=True),
    sa.Column('created_at', Timestamp(), nullable=False),
    sa.Column('revoked_at', Timestamp(), nullable=True),
    sa.ForeignKeyConstraint(['tenant'], ['tenants.name'], name=op.f('fk_api_keys_tenant_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_api_keys_key_hash'))
    )
    op.create_table('job_phases',
    sa.Column('job_id', Id, nullable=False),
    sa.Column('position', sa.SmallInteger(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('done', sa.Float(), nullable=False),
    sa.Column('total', sa.Float(), nullable=True),
    sa.Column('started_at', Timestamp(), nullable=True),
    sa.Column('completed_at', Timestamp(), nullable=True),
    sa.CheckConstraint("status IN ('not_started', 'running', 'paused', 'completed', 'failed', 'cancelled')", name=op.f('ck_job_phases_status')),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_job_phases_job_id_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id', 'position', name=op.f('pk_job_phases'))
    )
    op.create_table('webhook_deliveries',
    sa.Column('id', EventId, autoincrement=True, nullable=False),
    sa.Column('webhook_id', Id, nullable=False),
    sa.Column('tenant', sa.String(length=100), nullable=False),
    sa.Column('event_id', sa.BigInteger(), nullable=False),
    sa.Column('event_type', sa.String(length=32), nullable=False),
    sa.Column('job_id', Id, nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', Timestamp(), nullable=False),
    sa.Column('last_status_code', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', Timestamp(), nullable=False),
    sa.Column('delivered_at', Timestamp(), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'delivered', 'failed')", name=op.f('ck_webhook_deliveries_status')),
    sa.ForeignKeyConstraint(['webhook_id'], ['webhooks.id'], name=op.f('fk_webhook_deliveries_webhook_id_webhooks'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_deliveries')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_deliveries_due', ['next_attempt_at'], unique=False, postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'"))
        batch_op.create_index('ix_webhook_deliveries_webhook', ['webhook_id', 'id'], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        op.execute(NOTIFY_FUNCTION)
        op.execute(
            "CREATE TRIGGER events_notify AFTER INSERT ON events "
            "FOR EACH STATEMENT EXECUTE FUNCTION jobtrack_notify_events()"
        )
        # the claim index must stay the claim plan: keep autovacuum's statistics fresh
        op.execute("ALTER TABLE jobs SET (autovacuum_vacuum_scale_factor = 0.05)")



def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS events_notify ON events")
        op.execute("DROP FUNCTION IF EXISTS jobtrack_notify_events()")
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_webhook_deliveries_webhook')
        batch_op.drop_index('ix_webhook_deliveries_due', postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'"))

    op.drop_table('webhook_deliveries')
    op.drop_table('job_phases')
    op.drop_table('api_keys')
    with op.batch_alter_table('webhooks', schema=None) as batch_op:
        batch_op.drop_index('ix_webhooks_tenant')

    op.drop_table('webhooks')
    op.drop_table('tenants')
    op.drop_table('rate_limits')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_claim')
        batch_op.drop_index('ix_jobs_tenant_id')
        batch_op.drop_index('ix_jobs_parent', postgresql_where=sa.text('parent_job_id IS NOT NULL'), sqlite_where=sa.text('parent_job_id IS NOT NULL'))
        batch_op.drop_index('ix_jobs_lease', postgresql_where=sa.text("status = 'running'"), sqlite_where=sa.text("status = 'running'"))
        batch_op.drop_index('ix_jobs_idempotency', postgresql_where=sa.text('idempotency_key IS NOT NULL'), sqlite_where=sa.text('idempotency_key IS NOT NULL'))
        batch_op.drop_index('ix_jobs_flow', postgresql_where=sa.text('flow_id IS NOT NULL'), sqlite_where=sa.text('flow_id IS NOT NULL'))

    op.drop_table('jobs')
    with op.batch_alter_table('flows', schema=None) as batch_op:
        batch_op.drop_index('ix_flows_tenant_id')
        batch_op.drop_index('ix_flows_tenant_flowname')

    op.drop_table('flows')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_job', postgresql_where=sa.text('job_id IS NOT NULL'), sqlite_where=sa.text('job_id IS NOT NULL'))
        batch_op.drop_index('ix_events_flow', postgresql_where=sa.text('flow_id IS NOT NULL'), sqlite_where=sa.text('flow_id IS NOT NULL'))

    op.drop_table('events')
    op.drop_table('cursors')
