"""Feedback may label any stage that ran, not only the answer returned.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("feedback") as batch:  # SQLite alters through a copy
        batch.add_column(sa.Column("model", sa.String(256)))


def downgrade() -> None:
    with op.batch_alter_table("feedback") as batch:
        batch.drop_column("model")
