"""Rates that need no divergence: missing-value share and share of categories never seen in the reference.

Examples
--------
>>> missing_rate(5, 100)
0.05
>>> unseen_rate(3, 60)
0.05
"""

from __future__ import annotations


def missing_rate(missing: int, total: int) -> float:
    """Share of events where the feature was absent, null or of the wrong type."""
    return missing / total if total > 0 else 0.0


def unseen_rate(unseen: int, present: int) -> float:
    """Share of present values that fall in the ``unseen`` bin (not in the reference vocabulary)."""
    return unseen / present if present > 0 else 0.0
