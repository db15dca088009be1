"""How a database failure leaves the store: :func:`store_error` names the operation and the driver's
error class (never row contents), and tells an outage from a refusal.

- :class:`~monitor.errors.StoreUnavailable` (retry later): the server could not be reached or the
  connection was lost (``OperationalError``, ``DisconnectionError``, or any driver error that
  invalidated the connection, such as psycopg's ``InterfaceError`` on a dropped socket).
- :class:`~monitor.errors.StoreError` (retrying will not help): anything else SQLAlchemy raises, a
  constraint or trigger refusing the rows, and also a value that could not be bound (SQLAlchemy's
  ``StatementError`` with no driver error behind it on SQLite; on PostgreSQL psycopg serializes JSON
  itself, and the serializer's ``TypeError`` or ``ValueError`` reaches the caller unwrapped).

Every store entry point catches ``SQLAlchemyError`` and raises this, so callers handle two
exception classes, whatever the dialect and whichever step failed; the writes of an evaluation
(:func:`~monitor.store.alerts.in_transaction`) also catch :data:`UNBINDABLE`.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError

from monitor.errors import StoreError, StoreUnavailable

UNBINDABLE = (TypeError, ValueError)
"""What a JSON serializer raises for a value it cannot encode (no row content in the message)."""


def is_outage(e: Exception) -> bool:
    """The database could not be reached or dropped the connection."""
    return isinstance(e, OperationalError | DisconnectionError) or (
        isinstance(e, DBAPIError) and e.connection_invalidated
    )


def error_class(e: Exception) -> str:
    """The driver's error class when there is one, else SQLAlchemy's."""
    orig = getattr(e, "orig", None)
    return type(orig if orig is not None else e).__name__


def store_error(what: str, e: Exception) -> StoreError:
    """The :class:`StoreError` (or :class:`StoreUnavailable`) to raise for ``e`` during ``what``."""
    if is_outage(e):
        return StoreUnavailable(f"{what} failed: database unavailable ({error_class(e)})")
    return StoreError(f"{what} failed ({error_class(e)})")
