"""The initial schema: requests, their stages, and feedback.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "requests",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("created", sa.Double, nullable=False),
        sa.Column("replica", sa.String(128), nullable=False),
        sa.Column("key_id", sa.String(64)),
        sa.Column("policy", sa.String(256), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("endpoint", sa.String(16), nullable=False),
        sa.Column("prompt", sa.Text),
        sa.Column("prompt_len", sa.Integer),
        sa.Column("model", sa.String(256)),
        sa.Column("stage", sa.Integer, nullable=False),
        sa.Column("cost", sa.Double, nullable=False),
        sa.Column("saved", sa.Double, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("latency_s", sa.Double, nullable=False),
        sa.Column("overhead_s", sa.Double, nullable=False),
    )
    op.create_index("ix_requests_created", "requests", ["created"])
    op.create_index("ix_requests_policy_created", "requests", ["policy", "created"])
    op.create_index("ix_requests_key_id", "requests", ["key_id"])
    op.create_table(
        "stages",
        sa.Column("request_id", sa.String(64),
                  sa.ForeignKey("requests.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("stage", sa.Integer, primary_key=True),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("answer", sa.Text),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("signals", sa.JSON, nullable=False),
        sa.Column("predicted_quality", sa.Double),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("cost", sa.Double, nullable=False),
        sa.Column("latency_s", sa.Double, nullable=False),
        sa.Column("tokens_in", sa.Double),
        sa.Column("tokens_out", sa.Double),
    )
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(64),
                  sa.ForeignKey("requests.id", ondelete="CASCADE"), nullable=False),
        sa.Column("quality", sa.Double, nullable=False),
        sa.Column("created", sa.Double, nullable=False),
        sa.Column("key_id", sa.String(64)),
    )
    op.create_index("ix_feedback_request_id", "feedback", ["request_id"])


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_table("stages")
    op.drop_table("requests")
