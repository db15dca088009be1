"""Retention: how long each table keeps its rows, and the passes that remove the expired ones.

``inference_log`` on PostgreSQL loses whole daily partitions (``partitions``) after their request
ids left ``inference_request``, and the expired rows of its default partition with their ids, in
bounded batches; on SQLite its rows are deleted in bounded batches (one short transaction each, so
ingestion never waits long). The other
tables (``dead_letter`` once published, ``drift_event`` once published, resolved ``drift_alert`` and
``drift_incident``) lose rows in the same bounded batches.

Retention never removes a row that is still needed: the cutoff of ``inference_log`` is never later
than ``now - keep_s`` (the statistics window, allowed lateness and the promotion lookbacks: what a
takeover or a rollback-target read can ask for) nor than the ``since`` of an unexpired
``retention_hold`` (a ``reference build --from-log`` in progress). ``label_change`` and
``window_checkpoint`` are pruned by the takeover (``Takeover.prune``), ``pending_label`` by the
label expiry. Reference profiles and ``erasure_receipt`` hold no rows of events and are kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    MetaData,
    String,
    Table,
    and_,
    delete,
    func,
    insert,
    select,
    text,
    tuple_,
)

from monitor.store import partitions
from monitor.store.alerts import drift_alert, drift_event
from monitor.store.incidents import drift_incident
from monitor.store.tables import dead_letter, inference_log, inference_request, retention_hold
from monitor.store.times import to_datetime, to_epoch

DAY = 86400.0


@dataclass(frozen=True)
class RetentionPolicy:
    """Days each table keeps (None: forever) and what must stay whatever they say.

    ``keep_s``: rows of ``inference_log`` served within this many seconds of now are never removed.
    ``batch_rows``: rows deleted per transaction; ``max_batches``: per table and pass (None: until done).
    """

    inference_log_days: float | None = 30.0
    dead_letter_days: float | None = 30.0
    drift_event_days: float | None = 90.0
    resolved_alert_days: float | None = 90.0
    keep_s: float = 2 * DAY
    batch_rows: int = 10_000
    max_batches: int | None = None


@dataclass
class RetentionReport:
    """What one pass removed (or, dry run, would remove): rows per table, partitions dropped."""

    dry_run: bool
    cutoffs: dict[str, float] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)
    dropped_partitions: list[str] = field(default_factory=list)
    held_since: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "cutoffs": {k: to_datetime(v).isoformat() for k, v in self.cutoffs.items()},
            "deleted": dict(self.deleted),
            "dropped_partitions": list(self.dropped_partitions),
            "held_since": None if self.held_since is None else to_datetime(self.held_since).isoformat(),
        }


def inference_log_cutoff(policy: RetentionPolicy, now: float, held_since: float | None) -> float | None:
    """Rows of ``inference_log`` served before this time may go (None: keep every row).

    >>> p = RetentionPolicy(inference_log_days=1.0, keep_s=7200.0)
    >>> inference_log_cutoff(p, 10 * DAY, None) == 9 * DAY
    True
    >>> inference_log_cutoff(p, 10 * DAY, 8 * DAY) == 8 * DAY   # a hold keeps its rows
    True
    >>> inference_log_cutoff(RetentionPolicy(inference_log_days=0.01, keep_s=7200.0), 10 * DAY, None) == 10 * DAY - 7200
    True
    """
    if policy.inference_log_days is None:
        return None
    cut = min(now - policy.inference_log_days * DAY, now - policy.keep_s)
    return cut if held_since is None else min(cut, held_since)


def held_since(conn: Connection, now: float) -> float | None:
    """The earliest ``since`` of the holds that have not expired."""
    at = conn.execute(
        select(func.min(retention_hold.c.since)).where(retention_hold.c.expires_at > to_datetime(now))
    ).scalar()
    return to_epoch(at)


@contextmanager
def hold(engine: Engine, purpose: str, since: float, now: float, ttl_s: float = 6 * 3600.0) -> Iterator[None]:
    """Keep the ``inference_log`` rows served at or after ``since`` while the block runs (and at
    most ``ttl_s``, should the process die without releasing it)."""
    with engine.begin() as conn:
        hold_id = conn.execute(
            insert(retention_hold).values(
                purpose=purpose[:256], since=to_datetime(since), expires_at=to_datetime(now + ttl_s)
            ).returning(retention_hold.c.id)
        ).scalar_one()
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(delete(retention_hold).where(retention_hold.c.id == hold_id))


def apply_retention(engine: Engine, policy: RetentionPolicy, now: float, *, dry_run: bool = False) -> RetentionReport:
    """One retention pass over every table (see the module docstring)."""
    report = RetentionReport(dry_run=dry_run)
    with engine.begin() as conn:
        report.held_since = held_since(conn, now)
        # expired holds are removed too: their job is gone
        if not dry_run:
            conn.execute(delete(retention_hold).where(retention_hold.c.expires_at <= to_datetime(now)))
    cut = inference_log_cutoff(policy, now, report.held_since)
    if cut is not None:
        report.cutoffs["inference_log"] = cut
        _expire_inference_log(engine, policy, cut, dry_run, report)
    tables: list[tuple[str, Table, float | None, Any]] = [
        ("dead_letter", dead_letter, policy.dead_letter_days,
         lambda c: and_(c.received_at < _at(report, "dead_letter"), c.published_at.is_not(None))),
        ("drift_event", drift_event, policy.drift_event_days,
         lambda c: and_(c.created_at < _at(report, "drift_event"), c.published.is_(True))),
        ("drift_alert", drift_alert, policy.resolved_alert_days,
         lambda c: and_(c.state == "resolved", c.resolved_at < _at(report, "drift_alert"))),
        ("drift_incident", drift_incident, policy.resolved_alert_days,
         lambda c: and_(c.state == "resolved", c.resolved_at < _at(report, "drift_incident"))),
    ]
    for name, table, days, where in tables:
        if days is None:
            continue
        report.cutoffs[name] = now - days * DAY
        report.deleted[name] = _delete_batched(engine, table, where(table.c), policy, dry_run)
    return report


def _at(report: RetentionReport, name: str) -> datetime:
    return to_datetime(report.cutoffs[name])


def _expire_inference_log(
    engine: Engine, policy: RetentionPolicy, cut: float, dry_run: bool, report: RetentionReport
) -> None:
    at = to_datetime(cut)
    with engine.begin() as conn:
        partitioned = partitions.is_partitioned(conn)
        expired = partitions.drop_partitions_before(conn, at, dry_run=True) if partitioned else []
    if not partitioned:
        report.deleted["inference_log"] = _delete_batched(
            engine, inference_log, inference_log.c.served_at < at, policy, dry_run
        )
        return
    rows = keys = 0
    for name in expired:
        # the partition's request ids leave inference_request first (in key order, batch by batch);
        # a pass cut short leaves the partition for the next one, which finds fewer keys to delete
        with engine.connect() as conn:
            n = int(conn.execute(text(f"SELECT count(*) FROM {name}")).scalar_one())
        if not dry_run:
            done, k = _delete_keys_of(engine, name, policy)
            keys += k
            if not done:
                break
            with engine.begin() as conn:
                partitions.drop_partition(conn, name)
        else:
            keys += n
        rows += n
        report.dropped_partitions.append(name)
    default = _default_partition()
    if dry_run:
        n = _delete_batched(engine, default, default.c.served_at < at, policy, dry_run=True)
        rows, keys = rows + n, keys + n
    else:
        n = _delete_default_batched(engine, at, policy)
        rows, keys = rows + n, keys + n
    report.deleted["inference_log"] = rows
    report.deleted["inference_request"] = keys


def _delete_keys_of(engine: Engine, partition: str, policy: RetentionPolicy) -> tuple[bool, int]:
    """Delete from ``inference_request`` the ids of ``partition``'s rows, ``batch_rows`` per
    transaction; (all done, keys deleted)."""
    last, total, batches = "", 0, 0
    while policy.max_batches is None or batches < policy.max_batches:
        with engine.begin() as conn:
            ids = list(conn.execute(text(
                f"SELECT request_id FROM {partition} WHERE request_id > :last ORDER BY request_id LIMIT :n"
            ), {"last": last, "n": policy.batch_rows}).scalars())
            if not ids:
                return True, total
            total += int(conn.execute(
                delete(inference_request).where(inference_request.c.request_id.in_(ids))
            ).rowcount or 0)
        last = ids[-1]
        batches += 1
    return False, total


def _delete_default_batched(engine: Engine, at: datetime, policy: RetentionPolicy) -> int:
    """Delete the default partition's rows served before ``at`` with their ``inference_request``
    keys, ``batch_rows`` per transaction; the rows deleted."""
    total, batches = 0, 0
    while policy.max_batches is None or batches < policy.max_batches:
        with engine.begin() as conn:
            gone = list(conn.execute(text(
                f"DELETE FROM {partitions.DEFAULT} WHERE (request_id, served_at) IN ("
                f"SELECT request_id, served_at FROM {partitions.DEFAULT} WHERE served_at < :at LIMIT :n) "
                "RETURNING request_id"
            ), {"at": at, "n": policy.batch_rows}).scalars())
            if gone:
                conn.execute(delete(inference_request).where(inference_request.c.request_id.in_(gone)))
        total += len(gone)
        batches += 1
        if len(gone) < policy.batch_rows:
            break
    return total


def _default_partition() -> Table:
    """The default partition as a table of its own (only ``served_at`` and the key are needed)."""
    return Table(
        partitions.DEFAULT, MetaData(),
        Column("request_id", String(512), primary_key=True),
        Column("served_at", DateTime(timezone=True), primary_key=True),
    )


def _delete_batched(engine: Engine, table: Table, where: Any, policy: RetentionPolicy, dry_run: bool) -> int:
    """Delete ``table``'s rows matching ``where``, ``batch_rows`` per transaction; the count deleted
    (dry run: the count that matches)."""
    if dry_run:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table).where(where)).scalar_one())
    key = list(table.primary_key.columns)
    total, batches = 0, 0
    while policy.max_batches is None or batches < policy.max_batches:
        with engine.begin() as conn:
            victims = select(*key).where(where).limit(policy.batch_rows)
            if len(key) == 1:
                stmt = delete(table).where(key[0].in_(victims.scalar_subquery()))
            else:
                stmt = delete(table).where(tuple_(*key).in_(victims))
            n = int(conn.execute(stmt).rowcount or 0)
        total += n
        batches += 1
        if n < policy.batch_rows:
            break
    return total


def maintain(
    engine: Engine, policy: RetentionPolicy, now: float, *, ahead_days: int, dry_run: bool = False
) -> tuple[list[str], RetentionReport]:
    """The periodic upkeep of the data: the daily partitions of ``inference_log`` from yesterday to
    ``ahead_days`` ahead (none in a dry run), then one retention pass. Returns the partitions created
    and the pass's report."""
    created: list[str] = []
    if not dry_run:
        with engine.begin() as conn:
            created = partitions.ensure_partitions(conn, partitions.days_around(now, 1, ahead_days))
    return created, apply_retention(engine, policy, now, dry_run=dry_run)
