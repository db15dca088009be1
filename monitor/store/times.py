"""Epoch seconds <-> the timezone-aware datetimes stored in every table (UTC)."""

from __future__ import annotations

from datetime import UTC, datetime


def to_datetime(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def to_epoch(dt: datetime | None) -> float | None:
    """SQLite returns naive datetimes; everything is stored in UTC."""
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()
