"""the task registry: workers and their task declarations

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

Each ``jobtrack worker`` records itself (refreshed with its heartbeat, removed at clean
shutdown) and the tasks it declares; enqueueing resolves a job against its task's
declaration (defaults, and the data its function can take).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from jobtrack.store.tables import UTCDateTime as Timestamp

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Json = sa.JSON(none_as_null=True).with_variant(postgresql.JSON(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        'workers',
        sa.Column('id', sa.String(length=200), nullable=False),
        sa.Column('host', sa.String(length=255), nullable=False),
        sa.Column('pid', sa.Integer(), nullable=False),
        sa.Column('queues', Json, nullable=False),
        sa.Column('concurrency', sa.Integer(), nullable=False),
        sa.Column('version', sa.String(length=64), nullable=False),
        sa.Column('started_at', Timestamp(timezone=True),
                  nullable=False),
        sa.Column('heartbeat_at', Timestamp(timezone=True),
                  nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_workers')),
    )
    op.create_table(
        'tasks',
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('queue', sa.String(length=200), nullable=False),
        sa.Column('phases', Json, nullable=False),
        sa.Column('max_attempts', sa.Integer(), nullable=True),
        sa.Column('retry', Json, nullable=False),
        sa.Column('timeout', sa.Float(), nullable=True),
        sa.Column('parameters', Json, nullable=False),
        sa.Column('required', Json, nullable=False),
        sa.Column('accepts_any', sa.Boolean(), nullable=False),
        sa.Column('updated_at', Timestamp(timezone=True),
                  nullable=False),
        sa.Column('worker_id', sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint('name', 'queue', name=op.f('pk_tasks')),
    )


def downgrade() -> None:
    op.drop_table('tasks')
    op.drop_table('workers')
