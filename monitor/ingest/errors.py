"""Ingestion errors (the decoder's ``DecodeFailure`` lives beside the decoder)."""

from __future__ import annotations

from monitor.errors import SlicewatchError


class IngestError(SlicewatchError):
    """The ingestion edge failed in a way the consumer loop cannot recover from by itself."""


class TopicSetupError(IngestError):
    """Topics could not be created or checked on the broker."""
