"""The ingestion tables: ``inference_log``, ``model_version``, ``dead_letter``, ``pending_label``,
and the window-state tables ``label_change`` and ``window_checkpoint``.

Times are timezone-aware ``DateTime`` (``timestamptz`` on PostgreSQL; UTC ISO text on SQLite).
``migrations/versions/0001_ingest.py`` creates the first four, ``0004_window_checkpoint.py`` the
last two and the ``(partition, offset)`` index of ``inference_log``; ``0006_data_lifecycle.py``
partitions ``inference_log`` on PostgreSQL and adds ``inference_request``, ``erasure_receipt``,
``retention_hold``, ``subject_ref`` and ``dead_letter.redriven_at``.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from monitor.store.base import JSONType, metadata

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
AutoId = BigInteger().with_variant(Integer(), "sqlite")

inference_log = Table(
    "inference_log",
    metadata,
    Column("request_id", String(512), primary_key=True),
    Column("model_id", String(512), nullable=False),
    Column("input_hash", String(64), nullable=False),
    Column("input_features", JSONType, nullable=False),
    Column("output", Text, nullable=False),
    Column("confidence", Float),
    Column("served_at", DateTime(timezone=True), nullable=False),
    Column("was_correct", Boolean),
    Column("failure_cluster", Text),
    Column("score", Float),
    Column("label_source", String(16)),
    Column("judge_model", Text),
    Column("rubric_version", Text),
    Column("label_observed_at", DateTime(timezone=True)),
    Column("slice", JSONType, nullable=False),
    Column("lineage", JSONType),
    Column("latency_ms", Float),
    Column("tokens_in", BigInteger),
    Column("tokens_out", BigInteger),
    Column("topic", String(255)),
    Column("partition", Integer),
    Column("offset", BigInteger),
    Column("ingested_at", DateTime(timezone=True), nullable=False),
    Column("subject_ref", String(256)),
    Index("ix_inference_log_model_id_served_at", "model_id", "served_at"),
    Index("ix_inference_log_partition_offset", "partition", "offset"),
    Index("ix_inference_log_subject_ref", "subject_ref", postgresql_where=text("subject_ref IS NOT NULL"),
          sqlite_where=text("subject_ref IS NOT NULL")),
)
# On PostgreSQL ``inference_log`` is range-partitioned by ``served_at`` (``partitions``; migration
# 0006), so its primary key must hold the partition key: ``(request_id, served_at)``. A request id
# stays unique across partitions through this one-column table, which the write inserts into first
# (``ON CONFLICT DO NOTHING``): only the ids it accepted are inserted into ``inference_log``.
# Retention deletes the keys of a partition's rows before it drops the partition.
# SQLite keeps one ``inference_log`` keyed by ``request_id`` and has no such table.
inference_request = Table(
    "inference_request",
    metadata,
    Column("request_id", String(512), primary_key=True),
)

model_version = Table(
    "model_version",
    metadata,
    Column("model_id", String(512), primary_key=True),
    Column("promoted_at", DateTime(timezone=True), primary_key=True),
    Column("rollback_target", String(512)),
    Column("alias", Text),
    Column("traffic_fraction", Float),
    Column("ingested_at", DateTime(timezone=True), nullable=False),
)

dead_letter = Table(
    "dead_letter",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("topic", String(255), nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("key", LargeBinary),
    Column("value", LargeBinary),
    Column("value_size", BigInteger, nullable=False),
    Column("stage", String(32), nullable=False),
    Column("error_class", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("published_at", DateTime(timezone=True)),
    Column("redriven_at", DateTime(timezone=True)),
    UniqueConstraint("topic", "partition", "offset", name="uq_dead_letter_source"),
)

pending_label = Table(
    "pending_label",
    metadata,
    Column("request_id", String(512), primary_key=True),
    Column("was_correct", Boolean),
    Column("score", Float),
    Column("label_source", String(16)),
    Column("judge_model", Text),
    Column("rubric_version", Text),
    Column("failure_cluster", Text),
    Column("observed_at", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
)

# Every label change, in commit order: the label join takes one lock (an advisory lock on
# PostgreSQL, the write lock on SQLite) before it allocates ids, so a reader that has seen id n has
# seen every id below n. The owner of a model reads its label changes from here, whichever replica
# consumed the feedback; a checkpoint records the last id it holds. ``old``/``new`` are the label
# values (JSON) the statistics retract and add; ``served_at`` finds the prediction's bucket.
label_change = Table(
    "label_change",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("request_id", String(512), nullable=False),
    Column("model_id", String(512), nullable=False),
    Column("served_at", DateTime(timezone=True), nullable=False),
    Column("old", JSONType),
    Column("new", JSONType, nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
    Index("ix_label_change_changed_at", "changed_at"),
    sqlite_autoincrement=True,  # ids never reused, also after the log is pruned empty
)

# One model's window state (bucket counters, sketches, detectors), what it covers: every
# inference row with ``offset < positions[partition]`` and every label change with
# ``id <= label_seq``; ``layout_hash`` must match the running engine's, or the checkpoint is ignored.
window_checkpoint = Table(
    "window_checkpoint",
    metadata,
    Column("model_id", String(512), primary_key=True),
    Column("taken_at", DateTime(timezone=True), nullable=False),
    Column("positions", JSONType, nullable=False),
    Column("label_seq", BigInteger, nullable=False),
    Column("format", Integer, nullable=False),
    Column("state", LargeBinary, nullable=False),
)

# What an erasure did, without what it erased: counts, when, and a salted SHA-256 of the request
# (the sorted request ids, or the subject reference) that whoever holds the request can recompute.
erasure_receipt = Table(
    "erasure_receipt",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("erased_at", DateTime(timezone=True), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("salt", String(32), nullable=False),
    Column("request_sha256", String(64), nullable=False),
    Column("inference_rows", BigInteger, nullable=False),
    Column("pending_labels", BigInteger, nullable=False),
    Column("label_changes", BigInteger, nullable=False),
    Column("dead_letters", BigInteger, nullable=False),
)

# Rows a job still reads (``reference build --from-log``): retention keeps every row served at or
# after ``since`` while the hold has not expired (a crashed job's hold lapses at ``expires_at``).
retention_hold = Table(
    "retention_hold",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("purpose", String(256), nullable=False),
    Column("since", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)
