"""jobs.version: a counter every planned change of a job row moves by one

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30

A worker that claimed a job knows the row as it wrote it; finishing it with
``WHERE version = known`` skips re-reading and locking the row first, and a row that
someone else changed meanwhile fails that check and is planned again from what is stored.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('version', sa.Integer(), server_default='1',
                                      nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('version')
