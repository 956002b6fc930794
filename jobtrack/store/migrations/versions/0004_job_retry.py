"""jobs.retry: a job's own retry policy (BullMQ's ``backoff`` option), else its task's

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

``{base, factor, cap, jitter}`` seconds, as a task declares it; null (every job before
this revision): the policy of the task that runs it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Json = sa.JSON(none_as_null=True).with_variant(postgresql.JSON(none_as_null=True), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('retry', Json, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('retry')
