"""Incidents: drift_incident (open and recently resolved incidents, one JSON document each).

Revision ID: 0005_incidents
Revises: 0004_window_checkpoint
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from monitor.store.base import JSONType

revision = "0005_incidents"
down_revision = "0004_window_checkpoint"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "drift_incident",
        sa.Column("incident_id", sa.String(64), nullable=False),
        sa.Column("model_id", sa.String(512), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("opened_at", TZ, nullable=False),
        sa.Column("resolved_at", TZ),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("document", JSONType, nullable=False),
        sa.PrimaryKeyConstraint("incident_id", name="pk_drift_incident"),
    )
    op.create_index("ix_drift_incident_state", "drift_incident", ["state"])


def downgrade() -> None:
    op.drop_index("ix_drift_incident_state", table_name="drift_incident")
    op.drop_table("drift_incident")
