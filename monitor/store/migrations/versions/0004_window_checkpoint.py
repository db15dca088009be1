"""Window-state tables: label_change (the label log), window_checkpoint; inference_log (partition, offset).

Revision ID: 0004_window_checkpoint
Revises: 0003_alerts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from monitor.store.base import JSONType

revision = "0004_window_checkpoint"
down_revision = "0003_alerts"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
AutoId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_index("ix_inference_log_partition_offset", "inference_log", ["partition", "offset"])
    op.create_table(
        "label_change",
        sa.Column("id", AutoId, nullable=False, autoincrement=True),
        sa.Column("request_id", sa.String(512), nullable=False),
        sa.Column("model_id", sa.String(512), nullable=False),
        sa.Column("served_at", TZ, nullable=False),
        sa.Column("old", JSONType),
        sa.Column("new", JSONType, nullable=False),
        sa.Column("changed_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_label_change"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_label_change_changed_at", "label_change", ["changed_at"])
    op.create_table(
        "window_checkpoint",
        sa.Column("model_id", sa.String(512), nullable=False),
        sa.Column("taken_at", TZ, nullable=False),
        sa.Column("positions", JSONType, nullable=False),
        sa.Column("label_seq", sa.BigInteger(), nullable=False),
        sa.Column("format", sa.Integer(), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("model_id", name="pk_window_checkpoint"),
    )


def downgrade() -> None:
    op.drop_table("window_checkpoint")
    op.drop_index("ix_label_change_changed_at", table_name="label_change")
    op.drop_table("label_change")
    op.drop_index("ix_inference_log_partition_offset", table_name="inference_log")
