"""Pure drift statistics: mergeable histograms and windows, divergences, intervals, sketches and
reference profiles. Imports nothing with I/O and nothing of ``monitor.detect`` or ``monitor.drift``."""

from monitor.stats.profile import ReferenceProfile, SliceCounts
from monitor.stats.profile_builder import (
    build_profile,
    build_profile_from_log,
    build_profile_from_records,
)

__all__ = [
    "ReferenceProfile",
    "SliceCounts",
    "build_profile",
    "build_profile_from_log",
    "build_profile_from_records",
]
