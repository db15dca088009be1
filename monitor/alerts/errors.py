"""Exceptions of the alerting edge (sinks); the state machine itself does not raise on data."""

from __future__ import annotations

from monitor.errors import SlicewatchError


class AlertError(SlicewatchError):
    """Base class for alerting errors."""


class PublishError(AlertError):
    """A drift event or an alert could not be delivered (it stays queued and is retried)."""
