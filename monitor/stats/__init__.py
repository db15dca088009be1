"""Drift statistics: mergeable histograms, divergences, reference profiles and the windowed engine."""

from monitor.stats.engine import DriftEngine
from monitor.stats.profile import ReferenceProfile, SliceCounts
from monitor.stats.profile_builder import (
    build_profile,
    build_profile_from_log,
    build_profile_from_records,
    load_reference_file,
)

__all__ = [
    "DriftEngine",
    "ReferenceProfile",
    "SliceCounts",
    "build_profile",
    "build_profile_from_log",
    "build_profile_from_records",
    "load_reference_file",
]
