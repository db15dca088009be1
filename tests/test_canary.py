"""Canary arms from promotion events (issue 10, item 5).

* ``canary_values`` equals an independent computation: per slice key the arms' counts over the
  declared values and the rest, scipy's chi-square test of homogeneity and the PSI formula (hypothesis);
* a promotion with ``traffic_fraction < 1`` makes the pipeline compare the version with its target,
  a full promotion ends it, and an arm that gets another traffic mix fires ``cohort.psi`` on
  ``slice_mix:language`` with the action ``investigate`` (the comparison is biased), never
  ``retrain``; arms with the same traffic and the same model stay quiet.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chi2_contingency

from monitor.alerts.rules import DEFAULT_RULES
from monitor.alerts.state import AlertEvaluator
from monitor.drift import DriftEngine
from monitor.drift.canary import canary_values
from monitor.events import PromotionEvent
from monitor.pipeline import Pipeline
from monitor.stats.bins import FeatureSpec
from monitor.stats.layout import Layout
from tests.stats_fixtures import StreamSpec, make_batch

LAYOUT = Layout((FeatureSpec.categorical("c", ["a", "b"]),), FeatureSpec.categorical("output", ["y", "n"]),
                FeatureSpec.numeric("confidence", [0.5]), (("language", "es"), ("language", "ja"), ("tier", "gold")))


def _psi(p_counts, q_counts, eps=1e-4):
    p = (np.asarray(p_counts) / np.sum(p_counts) + eps) / (1 + eps * len(p_counts))
    q = (np.asarray(q_counts) / np.sum(q_counts) + eps) / (1 + eps * len(q_counts))
    return float(np.sum((q - p) * np.log(q / p)))


arm = st.tuples(st.integers(1, 400), st.integers(0, 100), st.integers(0, 100), st.integers(0, 100),
                st.lists(st.integers(0, 300), min_size=2, max_size=2))


@settings(max_examples=150, deadline=None)
@given(arm, arm)
def test_canary_values_equal_scipy_and_the_formula(target, canary):
    def build(a):
        rest, es, ja, gold, out = a
        events = np.array([rest + es + ja, es, ja, gold], dtype=np.int64)  # es and ja within the aggregate
        hist = np.zeros((4, LAYOUT.hist_size), dtype=np.int64)
        hist[0, LAYOUT.block(1)] = [*out, 0, 0, 0]
        return hist, events

    th, te = build(target)
    ch, ce = build(canary)
    got = {v.feature: v for v in canary_values("v2", LAYOUT, th, te, ch, ce, min_samples=1)}
    for key, (t_counts, c_counts) in {
        "language": ([te[1], te[2], te[0] - te[1] - te[2]], [ce[1], ce[2], ce[0] - ce[1] - ce[2]]),
        "tier": ([te[3], max(0, te[0] - te[3])], [ce[3], max(0, ce[0] - ce[3])]),
    }.items():
        v = got[f"slice_mix:{key}"]
        assert math.isclose(v.value, _psi(t_counts, c_counts), rel_tol=1e-9, abs_tol=1e-12)
        table = np.array([t_counts, c_counts])
        table = table[:, table.sum(axis=0) > 0]
        want = 1.0 if table.shape[1] < 2 else chi2_contingency(table, correction=False)[1]
        assert math.isclose(v.p_value, want, rel_tol=1e-7, abs_tol=1e-12)
        assert (v.signal, v.slice, v.statistic) == ("cohort", "all", "psi")
    if sum(target[4]) and sum(canary[4]):
        # the output block's value bins: y, n, other, unseen (the missing bin is left out)
        want_psi = _psi([*target[4], 0, 0], [*canary[4], 0, 0])
        assert math.isclose(got["output"].value, want_psi, rel_tol=1e-9, abs_tol=1e-12)
    else:
        assert "output" not in got


def _promotion(model_id: str, fraction: float | None, at: float = 0.0) -> PromotionEvent:
    return PromotionEvent(schema_version=1, model_id=model_id, rollback_target="v1",
                          promoted_at=datetime.fromtimestamp(at, UTC), traffic_fraction=fraction)


def _engine() -> DriftEngine:
    return DriftEngine(bucket_seconds=60, window_buckets=30, allowed_lateness_s=600, min_samples=200,
                       auto_reference_events=4000, protected_slices={"language": ["es", "ja"]})


def _run(canary_spec: StreamSpec, minutes: int = 60):
    """v1 serves 300 events a minute from t=0; v2 is promoted as a 20% canary at t=0 and serves 75;
    every snapshot goes through the default rules. Returns the firing alerts and the pipeline."""
    eng = _engine()
    evaluator = AlertEvaluator(dict(DEFAULT_RULES))
    pipeline = Pipeline(engine=eng, evaluator=evaluator, db=None, evaluate_every_s=15.0)
    rng = np.random.default_rng(5)
    target_spec = StreamSpec(model_id="v1", n_numeric=1)
    fired = []
    for q in range(minutes * 4):
        start, end = 15.0 * q, 15.0 * (q + 1)
        ev, lab = make_batch(rng, target_spec, 75, start, end)
        eng.observe(ev, lab, end)
        if q == 60:  # v1's reference is built (4,000 events): v2 arrives as a canary and inherits it
            pipeline._promote(_promotion("v2", 0.2, end))
        if q >= 60:
            ev, lab = make_batch(rng, canary_spec, 19, start, end)
            eng.observe(ev, lab, end)
        snap = eng.evaluate(end)
        fired += [t.alert for t in evaluator.evaluate(snap, pipeline.promotions, end) if t.to_state == "firing"]
    return fired, pipeline, eng


def test_a_canary_with_another_traffic_mix_says_investigate():
    # the router sends most Spanish traffic to the canary: es is 40% of v2's traffic, 5% of v1's
    spec = StreamSpec(model_id="v2", n_numeric=1, lang_p=(0.45, 0.40, 0.05, 0.05, 0.05))
    fired, pipeline, eng = _run(spec, 75)
    assert eng._canaries == {"v2": "v1"}
    mix = [a for a in fired if a.signal == "cohort" and a.feature == "slice_mix:language"]
    assert mix and mix[0].model_id == "v2"
    assert mix[0].action == "investigate" and "retrain" not in mix[0].actions
    # a full promotion of the same version ends the canary
    pipeline._promote(_promotion("v2", 1.0, 10_000.0))
    assert eng._canaries == {}
    assert not [v for v in eng.evaluate(10_000.0).values if v.signal == "cohort"]


def test_arms_with_the_same_traffic_and_model_stay_quiet():
    fired, _, eng = _run(replace(StreamSpec(model_id="v2", n_numeric=1)), 120)
    values = [v for v in eng.evaluate(120 * 60.0).values if v.signal == "cohort"]
    assert {v.feature for v in values} >= {"slice_mix:language", "output", "x0", "c0"}
    assert [a for a in fired if a.signal == "cohort"] == []
