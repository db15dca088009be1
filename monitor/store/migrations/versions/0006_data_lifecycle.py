"""Data lifecycle: inference_log partitioned by day on PostgreSQL (with inference_request keeping a
request id unique across partitions), subject_ref, dead_letter.redriven_at, erasure_receipt and
retention_hold.

An existing PostgreSQL ``inference_log`` is converted in this migration: renamed, a partitioned
table created with a partition for every day it holds (and the days around today), its rows
copied, then dropped. That takes a lock on ``inference_log`` for the time of the copy (about a
minute per few million rows on a small server): run ``slicewatch db upgrade`` before the new
version's monitors start. SQLite keeps one table and only gains the new column and tables.

Revision ID: 0006_data_lifecycle
Revises: 0005_incidents
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

from monitor.store.partitions import DEFAULT, days_around, ensure_partitions, partition_day

revision = "0006_data_lifecycle"
down_revision = "0005_incidents"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
AutoId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_COLUMNS = (
    'request_id, model_id, input_hash, input_features, output, confidence, served_at, was_correct, '
    'failure_cluster, score, label_source, judge_model, rubric_version, label_observed_at, slice, '
    'lineage, latency_ms, tokens_in, tokens_out, topic, partition, "offset", ingested_at'
)


def upgrade() -> None:
    op.create_table(
        "erasure_receipt",
        sa.Column("id", AutoId, nullable=False, autoincrement=True),
        sa.Column("erased_at", TZ, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("salt", sa.String(32), nullable=False),
        sa.Column("request_sha256", sa.String(64), nullable=False),
        sa.Column("inference_rows", sa.BigInteger(), nullable=False),
        sa.Column("pending_labels", sa.BigInteger(), nullable=False),
        sa.Column("label_changes", sa.BigInteger(), nullable=False),
        sa.Column("dead_letters", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_erasure_receipt"),
    )
    op.create_table(
        "retention_hold",
        sa.Column("id", AutoId, nullable=False, autoincrement=True),
        sa.Column("purpose", sa.String(256), nullable=False),
        sa.Column("since", TZ, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_retention_hold"),
    )
    with op.batch_alter_table("dead_letter") as batch:
        batch.add_column(sa.Column("redriven_at", TZ))
    if op.get_bind().dialect.name == "postgresql":
        _partition_inference_log()
    else:
        with op.batch_alter_table("inference_log") as batch:
            batch.add_column(sa.Column("subject_ref", sa.String(256)))
        op.create_index("ix_inference_log_subject_ref", "inference_log", ["subject_ref"],
                        sqlite_where=sa.text("subject_ref IS NOT NULL"))


def _partition_inference_log() -> None:
    bind = op.get_bind()
    op.execute("ALTER TABLE inference_log RENAME TO inference_log_unpartitioned")
    op.execute("ALTER TABLE inference_log_unpartitioned RENAME CONSTRAINT pk_inference_log TO pk_inference_log_old")
    op.execute("ALTER INDEX ix_inference_log_model_id_served_at RENAME TO ix_inference_log_old_model_served")
    op.execute("ALTER INDEX ix_inference_log_partition_offset RENAME TO ix_inference_log_old_partition_offset")
    _create_inference_log(partitioned=True)
    op.execute("CREATE INDEX ix_inference_log_subject_ref ON inference_log (subject_ref) WHERE subject_ref IS NOT NULL")
    op.execute(f"CREATE TABLE {DEFAULT} PARTITION OF inference_log DEFAULT")
    op.create_table(
        "inference_request",
        sa.Column("request_id", sa.String(512), nullable=False),
        sa.PrimaryKeyConstraint("request_id", name="pk_inference_request"),
    )
    days = {r[0] for r in bind.execute(sa.text(
        "SELECT DISTINCT (served_at AT TIME ZONE 'UTC')::date FROM inference_log_unpartitioned"
    ))}
    ensure_partitions(bind, days | set(days_around(time.time(), 1, 3)))
    op.execute(f"INSERT INTO inference_log ({_COLUMNS}) SELECT {_COLUMNS} FROM inference_log_unpartitioned")
    op.execute("INSERT INTO inference_request (request_id) SELECT request_id FROM inference_log_unpartitioned")
    op.execute("DROP TABLE inference_log_unpartitioned")
    op.execute("ANALYZE inference_log")


def _create_inference_log(*, partitioned: bool) -> None:
    """The PostgreSQL table as 0001 and 0004 made it, or partitioned with ``subject_ref``."""
    subject, key, by = ("subject_ref varchar(256),", "request_id, served_at", "PARTITION BY RANGE (served_at)") \
        if partitioned else ("", "request_id", "")
    op.execute(f"""
        CREATE TABLE inference_log (
            request_id varchar(512) NOT NULL,
            model_id varchar(512) NOT NULL,
            input_hash varchar(64) NOT NULL,
            input_features jsonb NOT NULL,
            output text NOT NULL,
            confidence double precision,
            served_at timestamptz NOT NULL,
            was_correct boolean,
            failure_cluster text,
            score double precision,
            label_source varchar(16),
            judge_model text,
            rubric_version text,
            label_observed_at timestamptz,
            slice jsonb NOT NULL,
            lineage jsonb,
            latency_ms double precision,
            tokens_in bigint,
            tokens_out bigint,
            topic varchar(255),
            partition integer,
            "offset" bigint,
            ingested_at timestamptz NOT NULL,
            {subject}
            CONSTRAINT pk_inference_log PRIMARY KEY ({key})
        ) {by}
    """)
    op.execute("CREATE INDEX ix_inference_log_model_id_served_at ON inference_log (model_id, served_at)")
    op.execute('CREATE INDEX ix_inference_log_partition_offset ON inference_log (partition, "offset")')


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("ALTER TABLE inference_log RENAME TO inference_log_partitioned")
        for (name,) in bind.execute(sa.text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'inference_log_partitioned'::regclass"
        )):
            assert name == DEFAULT or partition_day(name) is not None
        op.execute("ALTER INDEX ix_inference_log_model_id_served_at RENAME TO ix_inference_log_part_model_served")
        op.execute("ALTER INDEX ix_inference_log_partition_offset RENAME TO ix_inference_log_part_partition_offset")
        op.execute("ALTER TABLE inference_log_partitioned RENAME CONSTRAINT pk_inference_log TO pk_inference_log_part")
        _create_inference_log(partitioned=False)
        op.execute(f"INSERT INTO inference_log ({_COLUMNS}) SELECT {_COLUMNS} FROM inference_log_partitioned")
        op.execute("DROP TABLE inference_log_partitioned")  # its partitions go with it
        op.drop_table("inference_request")
    else:
        op.drop_index("ix_inference_log_subject_ref", table_name="inference_log")
        with op.batch_alter_table("inference_log") as batch:
            batch.drop_column("subject_ref")
    with op.batch_alter_table("dead_letter") as batch:
        batch.drop_column("redriven_at")
    op.drop_table("retention_hold")
    op.drop_table("erasure_receipt")
