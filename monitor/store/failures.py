"""How a database failure leaves the store: :func:`store_error` names the operation and the error
class (never row contents), and tells an outage from a refusal.

- :class:`~monitor.errors.StoreUnavailable` (retry later): the server could not be reached or the
  connection was lost (``OperationalError``, ``DisconnectionError``, any driver error SQLAlchemy
  found to have invalidated the connection), or no pooled connection came free in time
  (``sqlalchemy.exc.TimeoutError``: the server hangs and holds every connection).
- :class:`~monitor.errors.StoreError` (retrying will not help): anything else SQLAlchemy raises, a
  constraint or trigger refusing the rows, or a value JSON cannot hold (:class:`UnencodableValue`,
  raised by the engine's JSON serializer; SQLite gets it wrapped in a ``StatementError``, psycopg
  serializes JSON itself and lets it through unwrapped).

Every store entry point catches :data:`STORE_FAILURES` and raises :func:`store_error`, so callers
handle two exception classes, whatever the dialect and whichever step failed. (``OperationalError``
also covers a few failures a retry will not fix, such as a missing table; the schema is checked at
startup.)
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from monitor.errors import StoreError, StoreUnavailable


class UnencodableValue(TypeError):
    """A value the JSON columns cannot hold; the message names its type, never the value."""


STORE_FAILURES = (SQLAlchemyError, UnencodableValue)
"""What a store entry point turns into :func:`store_error`."""


def is_outage(e: BaseException) -> bool:
    """The database could not be reached, dropped the connection, or held every pooled connection."""
    return isinstance(e, OperationalError | DisconnectionError | PoolTimeout) or (
        isinstance(e, DBAPIError) and e.connection_invalidated
    )


def error_class(e: BaseException) -> str:
    """The driver's (or serializer's) error class when there is one, else SQLAlchemy's."""
    orig = getattr(e, "orig", None)
    return type(orig if orig is not None else e).__name__


def store_error(what: str, e: BaseException) -> StoreError:
    """The :class:`StoreError` (or :class:`StoreUnavailable`) to raise for ``e`` during ``what``."""
    if is_outage(e):
        return StoreUnavailable(f"{what} failed: database unavailable ({error_class(e)})")
    return StoreError(f"{what} failed ({error_class(e)})")
