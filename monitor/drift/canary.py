"""Canary arms without configuration (signal ``cohort``).

A promotion event with ``traffic_fraction < 1`` and a ``rollback_target`` is a canary: both
versions serve at once, and the pipeline names the pair to the engine. Each evaluation compares the
canary's main window with its target's, on the same bins (a promoted version inherits its target's
reference profile, so both windows share one layout):

* ``slice_mix:<key>`` -- the arms' traffic over each declared protected slice key (its declared
  values and the rest). When it differs, the router does not split traffic alike and every other
  comparison between the arms is biased: the alert says ``investigate`` (routing), not ``retrain``.
* every tracked input feature and ``output`` -- the arms' distributions.

Each value is the PSI between the arms (target = reference side) with the chi-square test of
homogeneity's p-value, corrected as one family (``cohort``); the ``cohort.psi`` rule decides.
``stats.cohorts`` stays for arms that have no promotion events.

Examples
--------
>>> import numpy as np
>>> from monitor.stats.bins import FeatureSpec
>>> from monitor.stats.layout import Layout
>>> lay = Layout((FeatureSpec.categorical("c", ["a", "b"]),), FeatureSpec.categorical("output", ["y", "n"]),
...              FeatureSpec.numeric("confidence", [0.5]), (("language", "es"),))
>>> target_hist = np.zeros((2, lay.hist_size), dtype=np.int64); canary_hist = target_hist.copy()
>>> target_hist[0, lay.block(0)] = [500, 500, 0, 0, 0]; canary_hist[0, lay.block(0)] = [100, 100, 0, 0, 0]
>>> target_hist[0, lay.block(1)] = [500, 500, 0, 0, 0]; canary_hist[0, lay.block(1)] = [150, 50, 0, 0, 0]
>>> events = np.array([[1000], [100]]), np.array([[200], [80]])   # es: 10% of the target, 40% of the canary
>>> vals = {v.feature: v for v in canary_values("v2", lay, target_hist, events[0], canary_hist, events[1], 50)}
>>> round(vals["slice_mix:language"].value, 3), vals["slice_mix:language"].p_value < 1e-6
(0.537, True)
>>> round(vals["c"].value, 6), round(vals["output"].value, 3)
(0.0, 0.274)
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from monitor.snapshot import AGGREGATE, SignalValue
from monitor.stats.chi_square import chi_square
from monitor.stats.layout import Layout
from monitor.stats.psi import psi


def _compare(model_id: str, feature: str, target: NDArray[np.int64], canary: NDArray[np.int64],
             min_samples: int, window_s: float | None) -> SignalValue | None:
    if target.sum() == 0 or canary.sum() == 0:
        return None
    n = int(min(target.sum(), canary.sum()))
    _, p = chi_square(target, canary)
    return SignalValue(model_id, AGGREGATE, "cohort", feature, "psi", psi(target, canary), n, n >= min_samples,
                       p_value=p, window_s=window_s)


def slice_mix(layout: Layout, events: NDArray[np.int64]) -> dict[str, NDArray[np.int64]]:
    """Per declared slice key: events in each declared value, then the rest (``events``: per slice row)."""
    keys = dict.fromkeys(k for k, _ in layout.slices)
    out = {}
    for key in keys:
        rows = [i + 1 for i, (k, _) in enumerate(layout.slices) if k == key]
        counts = events[rows].astype(np.int64)
        out[key] = np.append(counts, max(0, int(events[0]) - int(counts.sum())))
    return out


def canary_values(
    model_id: str,
    layout: Layout,
    target_hist: NDArray[np.int64],
    target_events: NDArray[np.int64],
    canary_hist: NDArray[np.int64],
    canary_events: NDArray[np.int64],
    min_samples: int,
    window_s: float | None = None,
) -> list[SignalValue]:
    """The canary ``model_id`` against its target: ``*_hist`` are the window totals' histograms per
    slice row, ``*_events`` the events per slice row (``scalars[:, EVENTS]``)."""
    out = []
    target_mix, canary_mix = slice_mix(layout, target_events.ravel()), slice_mix(layout, canary_events.ravel())
    for key in target_mix:
        v = _compare(model_id, f"slice_mix:{key}", target_mix[key], canary_mix[key], min_samples, window_s)
        if v is not None:
            out.append(v)
    for j, spec in enumerate((*layout.features, layout.output)):
        blk = layout.block(j)
        v = _compare(model_id, spec.name, target_hist[0, blk][:-1], canary_hist[0, blk][:-1], min_samples, window_s)
        if v is not None:
            out.append(v)
    return out
