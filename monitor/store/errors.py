"""Store errors. Messages name the operation and the driver error class, never row contents."""

from __future__ import annotations

from monitor.errors import SlicewatchError


class StoreError(SlicewatchError):
    """A database operation failed for a reason retrying will not fix (schema, constraint, bug)."""


class StoreUnavailable(StoreError):
    """The database could not be reached or dropped the connection; retrying later may succeed."""
