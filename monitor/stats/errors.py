"""Statistics errors. Messages never carry feature values, outputs or prompts."""

from __future__ import annotations

from monitor.errors import SlicewatchError


class StatsError(SlicewatchError):
    """Base class for errors of the statistics engine."""


class ProfileError(StatsError):
    """A reference profile cannot be built, read or used (no rows, unreadable file, bad JSON)."""
