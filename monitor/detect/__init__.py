"""Change detectors and trackers that need event order: ADWIN on correctness, lineage changes."""

from monitor.detect.adwin import CorrectnessDrop
from monitor.detect.lineage import LineageTracker

__all__ = ["CorrectnessDrop", "LineageTracker"]
