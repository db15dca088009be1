"""Daily range partitions of ``inference_log`` on PostgreSQL (SQLite keeps one table).

Partition ``inference_log_pYYYYMMDD`` holds the rows served in that UTC day; ``inference_log_default``
catches rows outside every daily partition (a backfill, a clock far ahead). Creating a day's
partition moves that day's rows out of the default partition in the same transaction, so a
partition can be created for any day at any time. Retention drops whole expired partitions and
deletes the default partition's expired rows in bounded batches (``retention``).

Every function runs in the caller's transaction and takes a transaction-scoped advisory lock, so two
replicas creating the same day's partition serialise instead of failing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Connection, text

PARENT = "inference_log"
DEFAULT = "inference_log_default"
PARTITION_LOCK_KEY = 0x51C3_9A77  # pg_advisory_xact_lock key serialising partition changes
_NAME = re.compile(r"^inference_log_p(\d{8})$")


def partition_name(day: date) -> str:
    """``inference_log_p20261201`` for 2026-12-01.

    >>> partition_name(date(2026, 12, 1))
    'inference_log_p20261201'
    """
    return f"{PARENT}_p{day:%Y%m%d}"


def partition_day(name: str) -> date | None:
    """The day a daily partition's name stands for, None for any other table.

    >>> partition_day("inference_log_p20261201"), partition_day("inference_log_default")
    (datetime.date(2026, 12, 1), None)
    """
    m = _NAME.match(name)
    return None if m is None else datetime.strptime(m.group(1), "%Y%m%d").date()


def day_start(day: date) -> datetime:
    """Midnight UTC opening ``day``."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def days_around(now: float, behind: int, ahead: int) -> list[date]:
    """The UTC days from ``behind`` days before ``now``'s day to ``ahead`` days after it.

    >>> days_around(86400 * 2.5, 1, 1)
    [datetime.date(1970, 1, 2), datetime.date(1970, 1, 3), datetime.date(1970, 1, 4)]
    """
    today = datetime.fromtimestamp(now, tz=UTC).date()
    return [today + timedelta(days=d) for d in range(-behind, ahead + 1)]


def is_partitioned(conn: Connection) -> bool:
    """Whether ``inference_log`` is a partitioned table (PostgreSQL after migration 0006)."""
    if conn.dialect.name != "postgresql":
        return False
    row = conn.execute(text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:t)"), {"t": PARENT}).first()
    return row is not None and row[0] == "p"


def daily_partitions(conn: Connection) -> dict[date, str]:
    """The daily partitions that exist: day -> table name."""
    rows = conn.execute(text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(:t)"
    ), {"t": PARENT})
    out = {}
    for (name,) in rows:
        day = partition_day(name)
        if day is not None:
            out[day] = name
    return out


def _lock(conn: Connection) -> None:
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PARTITION_LOCK_KEY})


def ensure_partitions(conn: Connection, days: Iterable[date]) -> list[str]:
    """Create the missing daily partitions of ``days`` (moving their rows out of the default
    partition); returns the names created. A no-op on an unpartitioned table."""
    if not is_partitioned(conn):
        return []
    _lock(conn)
    have = daily_partitions(conn)
    created = []
    for day in sorted(set(days) - set(have)):
        name = partition_name(day)
        lo, hi = day_start(day), day_start(day + timedelta(days=1))
        bounds = {"lo": lo, "hi": hi}
        conn.execute(text(f"CREATE TABLE {name} (LIKE {PARENT} INCLUDING DEFAULTS)"))
        conn.execute(text(
            f"WITH moved AS (DELETE FROM {DEFAULT} WHERE served_at >= :lo AND served_at < :hi RETURNING *) "
            f"INSERT INTO {name} SELECT * FROM moved"
        ), bounds)
        # a CHECK matching the bound lets ATTACH skip its validation scan of the new table
        conn.execute(text(
            f"ALTER TABLE {name} ADD CONSTRAINT {name}_bound "
            f"CHECK (served_at IS NOT NULL AND served_at >= '{lo.isoformat()}' AND served_at < '{hi.isoformat()}')"
        ))
        conn.execute(text(
            f"ALTER TABLE {PARENT} ATTACH PARTITION {name} "
            f"FOR VALUES FROM ('{lo.isoformat()}') TO ('{hi.isoformat()}')"
        ))
        conn.execute(text(f"ALTER TABLE {name} DROP CONSTRAINT {name}_bound"))
        created.append(name)
    return created


def drop_partitions_before(conn: Connection, cutoff: datetime, *, dry_run: bool = False) -> list[str]:
    """The daily partitions whose every row was served before ``cutoff``, oldest first (dropped
    unless ``dry_run``)."""
    if not is_partitioned(conn):
        return []
    _lock(conn)
    expired = [name for day, name in sorted(daily_partitions(conn).items())
               if day_start(day + timedelta(days=1)) <= cutoff]
    if not dry_run:
        for name in expired:
            drop_partition(conn, name)
    return expired


def drop_partition(conn: Connection, name: str) -> None:
    """Drop one daily partition (its rows go with it)."""
    if partition_day(name) is None:
        raise ValueError(f"{name} is not a daily partition of {PARENT}")
    _lock(conn)
    conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
