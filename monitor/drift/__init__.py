"""Drift per model: the windowed engine that turns observed events into signal values against the
reference profiles (pure: statistics from ``monitor.stats``, detectors from ``monitor.detect``), the
signal builders, and the engine's checkpoints."""

from monitor.drift.engine import DriftEngine

__all__ = ["DriftEngine"]
