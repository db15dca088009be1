"""Ingestion tables: inference_log, model_version, dead_letter, pending_label.

Revision ID: 0001_ingest
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from monitor.store.base import JSONType

revision = "0001_ingest"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
AutoId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "inference_log",
        sa.Column("request_id", sa.String(512), nullable=False),
        sa.Column("model_id", sa.String(512), nullable=False),
        sa.Column("input_hash", sa.String(64), nullable=False),
        sa.Column("input_features", JSONType, nullable=False),
        sa.Column("output", sa.Text(), nullable=False),
        sa.Column("confidence", sa.Float()),
        sa.Column("served_at", TZ, nullable=False),
        sa.Column("was_correct", sa.Boolean()),
        sa.Column("failure_cluster", sa.Text()),
        sa.Column("score", sa.Float()),
        sa.Column("label_source", sa.String(16)),
        sa.Column("judge_model", sa.Text()),
        sa.Column("rubric_version", sa.Text()),
        sa.Column("label_observed_at", TZ),
        sa.Column("slice", JSONType, nullable=False),
        sa.Column("lineage", JSONType),
        sa.Column("latency_ms", sa.Float()),
        sa.Column("tokens_in", sa.BigInteger()),
        sa.Column("tokens_out", sa.BigInteger()),
        sa.Column("topic", sa.String(255)),
        sa.Column("partition", sa.Integer()),
        sa.Column("offset", sa.BigInteger()),
        sa.Column("ingested_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("request_id", name="pk_inference_log"),
    )
    op.create_index("ix_inference_log_model_id_served_at", "inference_log", ["model_id", "served_at"])
    op.create_table(
        "model_version",
        sa.Column("model_id", sa.String(512), nullable=False),
        sa.Column("promoted_at", TZ, nullable=False),
        sa.Column("rollback_target", sa.String(512)),
        sa.Column("alias", sa.Text()),
        sa.Column("traffic_fraction", sa.Float()),
        sa.Column("ingested_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("model_id", "promoted_at", name="pk_model_version"),
    )
    op.create_table(
        "dead_letter",
        sa.Column("id", AutoId, nullable=False, autoincrement=True),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.LargeBinary()),
        sa.Column("value", sa.LargeBinary()),
        sa.Column("value_size", sa.BigInteger(), nullable=False),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("error_class", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("received_at", TZ, nullable=False),
        sa.Column("published_at", TZ),
        sa.PrimaryKeyConstraint("id", name="pk_dead_letter"),
        sa.UniqueConstraint("topic", "partition", "offset", name="uq_dead_letter_source"),
    )
    op.create_table(
        "pending_label",
        sa.Column("request_id", sa.String(512), nullable=False),
        sa.Column("was_correct", sa.Boolean()),
        sa.Column("score", sa.Float()),
        sa.Column("label_source", sa.String(16)),
        sa.Column("judge_model", sa.Text()),
        sa.Column("rubric_version", sa.Text()),
        sa.Column("failure_cluster", sa.Text()),
        sa.Column("observed_at", TZ, nullable=False),
        sa.Column("received_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("request_id", name="pk_pending_label"),
    )


def downgrade() -> None:
    op.drop_table("pending_label")
    op.drop_table("dead_letter")
    op.drop_table("model_version")
    op.drop_index("ix_inference_log_model_id_served_at", table_name="inference_log")
    op.drop_table("inference_log")
