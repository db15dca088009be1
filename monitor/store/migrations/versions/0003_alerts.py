"""Alert tables: drift_alert (state machine per fingerprint), drift_event (outbox of drift events).

Revision ID: 0003_alerts
Revises: 0002_reference_profile
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from monitor.store.base import JSONType

revision = "0003_alerts"
down_revision = "0002_reference_profile"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "drift_alert",
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("alertname", sa.String(128), nullable=False),
        sa.Column("model_id", sa.String(512), nullable=False),
        sa.Column("slice", sa.String(512), nullable=False),
        sa.Column("signal", sa.String(32), nullable=False),
        sa.Column("feature", sa.String(512), nullable=False),
        sa.Column("statistic", sa.String(128), nullable=False),
        sa.Column("labels", JSONType, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("actions", JSONType, nullable=False),
        sa.Column("rollback_target", sa.String(512)),
        sa.Column("suspected_causes", JSONType, nullable=False),
        sa.Column("active_since", TZ, nullable=False),
        sa.Column("fired_at", TZ),
        sa.Column("resolved_at", TZ),
        sa.Column("last_evaluated_at", TZ, nullable=False),
        sa.Column("last_value", sa.Float(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("sample_count", sa.Integer(), nullable=False),
        sa.Column("window_start", TZ, nullable=False),
        sa.Column("window_end", TZ, nullable=False),
        sa.Column("reference_id", sa.String(512)),
        sa.Column("reference_hash", sa.String(128)),
        sa.Column("breach_count", sa.Integer(), nullable=False),
        sa.Column("clear_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("fingerprint", name="pk_drift_alert"),
    )
    op.create_index("ix_drift_alert_state", "drift_alert", ["state"])
    op.create_table(
        "drift_event",
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("model_id", sa.String(512), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("payload", JSONType, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("published", sa.Boolean(), nullable=False),
        sa.Column("published_at", TZ),
        sa.PrimaryKeyConstraint("event_id", name="pk_drift_event"),
    )
    op.create_index("ix_drift_event_published_created_at", "drift_event", ["published", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_drift_event_published_created_at", table_name="drift_event")
    op.drop_table("drift_event")
    op.drop_index("ix_drift_alert_state", table_name="drift_alert")
    op.drop_table("drift_alert")
