"""Reference profiles: reference_profile (versioned per model, with a content hash and a JSON body).

Revision ID: 0002_reference_profile
Revises: 0001_ingest
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from monitor.store.base import JSONType

revision = "0002_reference_profile"
down_revision = "0001_ingest"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "reference_profile",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("model_id", sa.String(512), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("body", JSONType, nullable=False),
        sa.PrimaryKeyConstraint("model_id", "version", name="pk_reference_profile"),
    )
    op.create_index("ix_reference_profile_id", "reference_profile", ["id"])


def downgrade() -> None:
    op.drop_index("ix_reference_profile_id", table_name="reference_profile")
    op.drop_table("reference_profile")
