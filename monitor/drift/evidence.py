"""Sequential quality evidence per (model, slice): every first label of the model's predictions,
counted from the first one on, tested against the slice's bar with the anytime-valid test of
:mod:`monitor.stats.bernoulli_evidence` (signal ``quality``, statistic ``bar_evidence``).

The counts are by prediction: a label that arrives hours late still counts for the version that
served the prediction, whatever the windows have moved on to. A model id is one version (a
promotion brings a new id), so the evidence speaks about that version's own predictions since its
first one; its "window" is from the first counted prediction to now, and an alert on it takes that
first prediction as its onset (a regression right after a promotion says rollback however late its
labels arrive). State: three numbers per (model, slice). Changed labels (a second label for the
same request) are not counted again: the test takes each prediction's first verdict.

The evidence speaks while the version serves: once no prediction of it is left in the main window
(it was rolled back or retired) its values are no longer emitted, so its alerts and incident
resolve after their clear period.

``bar``: the configured release bar of the slice; without one, the reference's labelled accuracy
lowered to its Wilson lower bound at ``1 - alpha`` (a finite reference's estimate above the truth
would otherwise make a healthy model's evidence grow without end).

Examples
--------
>>> t = OutcomeTally()
>>> t.add(correct=160, total=200, first_served=120.0)
>>> v, acc = bar_evidence("m", "all", t, bar=0.9, alpha=0.01, now=3720.0)
>>> round(v.value, 2), v.sample_count, v.window_s, v.baseline, acc.statistic, acc.value
(3.23, 200, 3600.0, 0.9, 'accuracy_since_first', 0.8)

Against the rollback target (statistic ``target_evidence``): the same test with the bar at the
Wilson lower bound of the target's own labelled accuracy on the slice (read from its rows in
``inference_log`` over the promotion watch before the promotion). Each of the two steps errs with
probability at most ``alpha``, so "the new version is worse than its target" is wrong with
probability at most ``2 alpha``:

>>> t, _ = target_evidence("v2", "language=es", tally=t, target_id="v1", target_correct=1840,
...                        target_total=2000, alpha=0.01, now=3720.0)
>>> t.statistic, round(t.baseline, 4), t.value > 3, t.feature
('target_evidence', 0.9029, True, 'was_correct')
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

from monitor.snapshot import SignalValue
from monitor.stats.bernoulli_evidence import BarTest
from monitor.stats.wilson import wilson_interval


@dataclass
class OutcomeTally:
    """First labels (with a correctness verdict) of one (model, slice) since its first prediction."""

    correct: int = 0
    total: int = 0
    first_served: float = math.inf

    def add(self, correct: int, total: int, first_served: float) -> None:
        self.correct += correct
        self.total += total
        self.first_served = min(self.first_served, first_served)


def reference_bar(correct: int, total: int, alpha: float) -> float | None:
    """The bar a reference's labelled accuracy gives: its Wilson lower bound at ``1 - alpha``."""
    if total <= 0:
        return None
    return wilson_interval(correct, total, 1.0 - alpha)[0]


def target_evidence(
    model_id: str,
    slice_: str,
    tally: OutcomeTally,
    target_id: str,
    target_correct: int,
    target_total: int,
    alpha: float,
    now: float,
) -> tuple[SignalValue, SignalValue]:
    """``target_evidence``: ``log10`` of the evidence that the slice's accuracy is below the rollback
    target's (its Wilson lower bound at ``1 - alpha``), counted since the version's first prediction;
    and ``accuracy_since_first`` as :func:`bar_evidence` gives it."""
    bar = reference_bar(target_correct, target_total, alpha)
    assert bar is not None, "the target needs labelled rows"
    evidence, accuracy = bar_evidence(model_id, slice_, tally, bar, alpha, now, reference_id=f"target:{target_id}")
    return replace(evidence, statistic="target_evidence"), accuracy


def bar_evidence(
    model_id: str,
    slice_: str,
    tally: OutcomeTally,
    bar: float,
    alpha: float,
    now: float,
    reference_id: str | None = None,
    reference_hash: str | None = None,
) -> tuple[SignalValue, SignalValue]:
    """``bar_evidence``: ``log10`` of the evidence that the slice's accuracy is below ``bar``
    (>= ``log10(1/alpha)`` rejects "accuracy >= bar" at level ``alpha``, however often it was looked
    at); and ``accuracy_since_first``, the accuracy it is about (what a rollback decision compares
    with the rollback target's)."""
    log10_e = _log10_e_value(min(max(bar, 1e-6), 1 - 1e-6), alpha, tally.correct, tally.total)
    common = {"reference_id": reference_id, "reference_hash": reference_hash,
              "window_s": max(0.0, now - tally.first_served)}
    evidence = SignalValue(model_id, slice_, "quality", "was_correct", "bar_evidence", log10_e,
                           tally.total, tally.total > 0, baseline=bar, **common)  # type: ignore[arg-type]
    accuracy = SignalValue(model_id, slice_, "quality", "was_correct", "accuracy_since_first",
                           tally.correct / tally.total if tally.total else 0.0, tally.total, tally.total > 0,
                           baseline=bar, **common)  # type: ignore[arg-type]
    return evidence, accuracy


@lru_cache(maxsize=8192)
def _log10_e_value(bar: float, alpha: float, correct: int, total: int) -> float:
    """:class:`BarTest`'s evidence after ``correct`` of ``total``: a pure function of its arguments,
    kept for the counts last seen (a slice whose tally did not move since the last evaluation, the
    usual case between labels, costs a lookup instead of two incomplete beta functions)."""
    test = BarTest(bar, alpha)
    test.update(correct, total)
    return test.log10_e_value
