"""Threshold rules per ``<signal>.<statistic>``: when a snapshot value is a breach, and how severe.

A rule only looks at one statistic; the statistics the rules do not name are exported as metrics
but never alert.

Examples
--------
>>> r = Rule("quality.accuracy_gap", warning=0.02, critical=0.05, min_samples=100)
>>> r.severity(0.03)
'warning'
>>> r.severity(0.07)
'critical'
>>> r.severity(0.01) is None
True
>>> Rule("label_coverage.coverage", warning=0.5, critical=0.2, direction="below").severity(0.3)
'warning'

Hysteresis: a firing alert is not cleared while its value stays beyond the rule's clear threshold
(``clear``; default: the warning threshold moved a quarter of its size toward the good side), so a
value that hovers near the warning line fires once and resolves once.

>>> r.clear_threshold, r.holds(SignalValue("m", "all", "quality", "was_correct", "accuracy_gap", 0.016, 500))
(0.015, True)
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from monitor.snapshot import SignalValue

Severity = Literal["warning", "critical"]
CLEAR_FRACTION = 0.75
"""Default clear threshold: this fraction of the warning threshold (its size, toward the good side)."""


@dataclass(frozen=True, slots=True)
class Rule:
    """Thresholds for one statistic; ``hold``/``clear`` count consecutive evaluations."""

    name: str
    warning: float
    critical: float
    direction: Literal["above", "below"] = "above"
    min_samples: int = 200
    hold_evaluations: int = 3
    clear_evaluations: int = 5
    clear: float | None = None  # the clear threshold (hysteresis); None: CLEAR_FRACTION of the way

    def __post_init__(self) -> None:
        if "." not in self.name:
            raise ValueError(f"rule {self.name!r} must be named '<signal>.<statistic>'")
        if self.direction not in ("above", "below"):
            raise ValueError(f"rule {self.name!r}: direction must be 'above' or 'below'")
        if self.direction == "above" and self.critical < self.warning:
            raise ValueError(f"rule {self.name!r}: critical must be >= warning for direction 'above'")
        if self.direction == "below" and self.critical > self.warning:
            raise ValueError(f"rule {self.name!r}: critical must be <= warning for direction 'below'")
        if self.min_samples < 1 or self.hold_evaluations < 1 or self.clear_evaluations < 1:
            raise ValueError(f"rule {self.name!r}: min_samples, hold and clear must be >= 1")
        if self.clear is not None and self._beyond(self.clear, self.warning):
            raise ValueError(f"rule {self.name!r}: the clear threshold must not lie beyond the warning one")

    @property
    def clear_threshold(self) -> float:
        """Below this (``direction="above"``; above it for ``"below"``) a firing alert may clear."""
        if self.clear is not None:
            return self.clear
        step = (1.0 - CLEAR_FRACTION) * abs(self.warning)
        return round(self.warning - step if self.direction == "above" else self.warning + step, 12)

    def holds(self, v: SignalValue) -> bool:
        """A firing alert's value that is no breach but still beyond the clear threshold (with enough
        samples): the alert neither clears nor starts counting towards its resolution."""
        if not v.sufficient or v.sample_count < self.min_samples or math.isnan(v.value):
            return False
        return v.value >= self.clear_threshold if self.direction == "above" else v.value <= self.clear_threshold

    @property
    def signal(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def statistic(self) -> str:
        return self.name.split(".", 1)[1]

    def _beyond(self, value: float, threshold: float) -> bool:
        return value > threshold if self.direction == "above" else value < threshold

    def severity(self, value: float) -> Severity | None:
        """The severity of ``value`` alone (no sample or significance check)."""
        if math.isnan(value):
            return None
        if self._beyond(value, self.critical):
            return "critical"
        if self._beyond(value, self.warning):
            return "warning"
        return None

    def threshold(self, severity: Severity) -> float:
        return self.critical if severity == "critical" else self.warning

    def verdict(self, v: SignalValue, alpha: float) -> Severity | None:
        """Severity when ``v`` breaches: enough samples, past the threshold and, where the statistic
        has an adjusted p-value, significant at ``alpha``; ``None`` otherwise."""
        if not v.sufficient or v.sample_count < self.min_samples:
            return None
        if v.p_value_adjusted is not None and not v.p_value_adjusted < alpha:
            return None
        return self.severity(v.value)


_DISTRIBUTION = ("missing_rate", "missing_rate_delta", "psi", "js", "ks", "wasserstein", "chi2", "unseen_rate")
STATISTICS: Mapping[str, frozenset[str]] = {
    "input": frozenset({*_DISTRIBUTION, "p50", "p95", "p99", "p99_shift", "rank_cusum"}),
    "output": frozenset({*_DISTRIBUTION, "mean_confidence", "mean_confidence_delta", "rank_cusum"}),
    "quality": frozenset({
        "accuracy", "accuracy_wilson_lower", "accuracy_wilson_upper", "accuracy_gap", "adwin_drift",
        "adwin_estimate", "mean_score", "score_lower", "score_upper", "score_gap", "bar_evidence",
        "target_evidence", "accuracy_since_first", "failure_cluster_share",
    }),
    "label_coverage": frozenset({"coverage", "coverage_delta", "delay_p50", "delay_p90", "delay_p99"}),
    "cohort": frozenset({"psi", "js"}),
}
"""Every ``<signal>.<statistic>`` the engine emits: the names a rule can have (the tests check the
engine emits nothing else)."""


def rule_name_error(name: str) -> str | None:
    """Why ``name`` cannot be a rule (None: it can), with the nearest known names as a hint.

    >>> rule_name_error("input.psi") is None
    True
    >>> rule_name_error("input.pssi")
    "unknown rule 'input.pssi' (did you mean 'input.psi'?)"
    >>> rule_name_error("quailty.accuracy_gap")
    "unknown rule 'quailty.accuracy_gap' (did you mean 'quality.accuracy_gap'?)"
    """
    signal, _, statistic = name.partition(".")
    if statistic in STATISTICS.get(signal, ()):
        return None
    known = sorted(f"{sig}.{stat}" for sig, stats in STATISTICS.items() for stat in stats)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else \
        f" (signals: {', '.join(sorted(STATISTICS))}; see monitor.alerts.rules.STATISTICS)"
    return f"unknown rule {name!r}{hint}"


def _defaults(*rules: Rule) -> dict[str, Rule]:
    return {r.name: r for r in rules}


DEFAULT_RULES: Mapping[str, Rule] = _defaults(
    Rule("input.psi", warning=0.2, critical=0.3),
    # a p99 rests on its top 1%: 1,000 samples put 10 of them above it (200 put 2: noise pages)
    Rule("input.p99_shift", warning=0.5, critical=1.0, min_samples=1000),
    # the rank CUSUM of every numeric feature (and the confidence) since its last restart: a slow
    # ramp long before a window has moved. log10 of the model's e-detector over its detector count:
    # 6 = no change reaches it more often than once in 10^6 buckets of the model (1.9 years of
    # one-minute buckets); sequential, so no sample minimum and no hold
    Rule("input.rank_cusum", warning=6.0, critical=7.0, min_samples=1, hold_evaluations=1),
    Rule("output.rank_cusum", warning=6.0, critical=7.0, min_samples=1, hold_evaluations=1),
    Rule("output.psi", warning=0.2, critical=0.3),
    Rule("output.mean_confidence_delta", warning=0.05, critical=0.1),
    Rule("quality.accuracy_gap", warning=0.02, critical=0.05),
    Rule("quality.score_gap", warning=0.02, critical=0.05),
    # river's ADWIN on each slice's correctness stream: an abrupt drop, long before the window moves.
    Rule("quality.adwin_drift", warning=0.5, critical=0.5, hold_evaluations=2),
    # the anytime-valid test of "accuracy >= bar" since the version's first prediction (log10 of its
    # evidence: 3 = 1 in 1,000 for a version at its bar, however often it is looked at); valid from
    # the first label on, so no sample minimum and no hold
    Rule("quality.bar_evidence", warning=3.0, critical=4.0, min_samples=1, hold_evaluations=1),
    # the same test against the rollback target's own labelled accuracy on the slice (a promoted
    # version worse than the one it replaced): 3 = wrong at most 2 in 1,000 (the target's bound adds alpha)
    Rule("quality.target_evidence", warning=3.0, critical=4.0, min_samples=1, hold_evaluations=1),
    # one failure cluster's share of the recent labelled failures (the longest short window) above its
    # share before them (Fisher's exact test, corrected with the quality family); value = share points
    Rule("quality.failure_cluster_share", warning=0.1, critical=0.2, min_samples=30),
    Rule("label_coverage.coverage_delta", warning=0.2, critical=0.4),
    Rule("cohort.psi", warning=0.2, critical=0.3),
)
"""The rules used when the configuration names none (``alerts.rules``)."""
