"""Feedback from a judge: where a label came from, which judge made it, what it cost.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("feedback") as batch:  # SQLite alters through a copy
        batch.add_column(sa.Column("source", sa.String(16)))
        batch.add_column(sa.Column("judge", sa.Text))
        batch.add_column(sa.Column("cost", sa.Double))


def downgrade() -> None:
    with op.batch_alter_table("feedback") as batch:
        batch.drop_column("cost")
        batch.drop_column("judge")
        batch.drop_column("source")
