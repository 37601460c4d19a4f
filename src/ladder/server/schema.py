"""The gateway database's tables, as SQLAlchemy Core objects the store's queries use.

The migrations (`migrations/versions/`) create them; a test checks that the migrated
database equals these definitions, so neither can drift from the other.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

requests = Table(
    "requests", metadata,
    Column("id", String(64), primary_key=True),
    Column("created", Double, nullable=False),
    Column("replica", String(128), nullable=False),
    Column("key_id", String(64)),
    Column("policy", String(256), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("endpoint", String(16), nullable=False),
    Column("prompt", Text),
    Column("prompt_len", Integer),
    Column("model", String(256)),
    Column("stage", Integer, nullable=False),
    Column("cost", Double, nullable=False),
    Column("saved", Double, nullable=False),
    Column("status", Integer, nullable=False),
    Column("error", Text),
    Column("latency_s", Double, nullable=False),
    Column("overhead_s", Double, nullable=False),
    Index("ix_requests_created", "created"),
    Index("ix_requests_policy_created", "policy", "created"),
    Index("ix_requests_key_id", "key_id"),
)

stages = Table(
    "stages", metadata,
    Column("request_id", String(64), ForeignKey("requests.id", ondelete="CASCADE"),
           primary_key=True),
    Column("stage", Integer, primary_key=True),
    Column("model", String(256), nullable=False),
    Column("answer", Text),
    Column("text", Text, nullable=False),
    Column("signals", JSON, nullable=False),  # finite values only: JSON has no NaN
    Column("predicted_quality", Double),
    Column("decision", String(16), nullable=False),
    Column("error", Text),
    Column("cost", Double, nullable=False),
    Column("latency_s", Double, nullable=False),
    Column("tokens_in", Double),  # NULL where unknown
    Column("tokens_out", Double),
)

feedback = Table(
    "feedback", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(64), ForeignKey("requests.id", ondelete="CASCADE"),
           nullable=False),
    Column("quality", Double, nullable=False),
    Column("created", Double, nullable=False),
    Column("key_id", String(64)),
    Column("model", String(256)),  # the stage labelled; NULL: the model that answered
    Column("source", String(16)),  # NULL: a person; 'reference' / 'judge': a shadow run
    Column("judge", Text),  # the judge's provenance (shadow labels only)
    Column("cost", Double),  # what the judge's call cost (shadow labels only)
    Index("ix_feedback_request_id", "request_id"),
)
