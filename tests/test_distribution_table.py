"""An evaluation's distribution statistics as columns (:class:`DistributionTable`, issue 12).

* every table cell stands for the values the engine's signal builder defines for it: the values it
  materializes are the ones an independent recomputation from the window's and the reference's
  histograms gives (the per-block statistics functions), in the builder's order;
* the alert evaluator reads a table as arrays (only breaching cells and cells of alerts with a
  state become values) and skips plain values that neither breach nor belong to an alert with a
  state: for random rules over a stream that drifts, breaches and recovers, it moves every alert
  exactly as counting every value does on the same values made into a plain tuple: the same
  transitions, in the same order, and the same states (hypothesis);
* a :class:`ValueSet` is the sequence of its values: equal to their tuple, its models, its tables.
"""

from __future__ import annotations

import dataclasses
import math

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.alerts.rules import Rule
from monitor.alerts.state import AlertEvaluator, _Candidates
from monitor.drift import DriftEngine
from monitor.records import QualityBar
from monitor.snapshot import Segment, SignalValue, Snapshot, ValueSet
from monitor.stats.bins import FeatureSpec
from monitor.stats.chi_square import chi_square
from monitor.stats.jensen_shannon import jensen_shannon
from monitor.stats.ks import ks_binned
from monitor.stats.psi import psi
from monitor.stats.wasserstein import wasserstein_binned
from tests.stats_fixtures import StreamSpec, make_batch

ONSET = 20 * 60.0
SPEC = StreamSpec(input_shift=0.8, onset=ONSET, new_category_share=0.3, accuracy_drop=0.1)


def _stream() -> list[Snapshot]:
    """45 minutes at the 15 s cadence: a reference, then from ``ONSET`` an input shift, unseen
    categories and a feature missing in a fifth of the events; from minute 35 the stream is back
    to normal (alerts clear). Short windows of 5 and 15 minutes, three protected slice values."""
    eng = DriftEngine(bucket_seconds=60, window_buckets=30, allowed_lateness_s=120, min_samples=50,
                      auto_reference_events=3000, short_windows=(5, 15),
                      protected_slices={"language": ["en", "es"], "c0": ["a"]},
                      quality_bars={"m1": {"all": QualityBar(accuracy=0.85), "language=es": QualityBar(accuracy=0.85)}})
    rng = np.random.default_rng(7)
    out = []
    for q in range(45 * 4):
        start, end = 15.0 * q, 15.0 * (q + 1)
        spec = SPEC if start < 35 * 60.0 else StreamSpec()
        ev, lab = make_batch(rng, spec, 60, start, end)
        if ONSET <= start < 35 * 60.0:
            ev = [e if i % 5 else msgspec.structs.replace(e, input_features={k: v for k, v in e.input_features.items()
                                                                         if k != "x1"})
                  for i, e in enumerate(ev)]
        eng.observe(ev, lab, end)
        out.append(eng.evaluate(end - 1e-6))
    return out


SNAPSHOTS = _stream()


def test_snapshots_hold_tables_with_every_kind_of_cell():
    tables = [t for s in SNAPSHOTS for t in ValueSet.of(s.values).tables]
    assert tables
    last = tables[-1]
    assert len(set(last.windows)) == 3 and {"all", "language=es", "c0=a"} <= set(last.slices)
    stats = {v.statistic for s in SNAPSHOTS[-80:] for v in s.values}
    assert {"psi", "js", "ks", "wasserstein", "chi2", "unseen_rate", "missing_rate", "missing_rate_delta"} <= stats
    # the missing feature and the unseen categories show after the onset
    assert any(v.statistic == "missing_rate" and v.value > 0.05 for v in SNAPSHOTS[135].values)
    assert any(v.statistic == "unseen_rate" and v.value > 0.1 for v in SNAPSHOTS[135].values)


def _oracle(spec: FeatureSpec, cur: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """The per-block functions on one block's value bins (the last bin is the missing one)."""
    c, r = cur[:-1], ref[:-1]
    out = {"missing_rate": cur[-1] / cur.sum(), "missing_rate_delta": abs(cur[-1] / cur.sum() - ref[-1] / ref.sum()),
           "psi": psi(r, c), "js": jensen_shannon(r, c)}
    if spec.kind == "numeric":
        out["ks"] = ks_binned(r, c)
        out["wasserstein"] = wasserstein_binned(spec.points(), r, c)
    else:
        out["chi2"] = chi_square(r, c)[0]
    if spec.unseen_index is not None:
        out["unseen_rate"] = c[spec.unseen_index] / c.sum()
    return out


def test_table_values_equal_the_per_block_functions_on_the_window_histograms():
    """Rebuild one model's main-window histograms from the engine's window and check every cell of
    the aggregate row against the per-block functions; the values come in the builder's order."""
    eng = DriftEngine(bucket_seconds=60, window_buckets=30, allowed_lateness_s=120, min_samples=50,
                      auto_reference_events=3000)
    rng = np.random.default_rng(3)
    for q in range(30 * 4):
        ev, lab = make_batch(rng, SPEC, 60, 15.0 * q, 15.0 * (q + 1))
        eng.observe(ev, lab, 15.0 * (q + 1))
    now = 30 * 60.0 - 1e-6
    values = ValueSet.of(eng.evaluate(now).values)
    table = values.tables[0]
    window = eng._windows["m1"]  # the window's own totals: what the table must have been computed from
    profile = eng.reference("m1")
    assert profile is not None
    hist = window.totals(now).hist[0]
    lay = window.layout
    row = table.windows.index(1800.0)
    checked = 0
    for b, name in enumerate(table.features[: len(lay.features)]):
        if not table.tested[row, b]:
            continue
        cur = hist[lay.block(b)].astype(float)
        ref = profile.aggregate.feature_counts(name).astype(float)
        want = _oracle(lay.features[b], cur, ref)
        cell = table.cell(row, b)
        # every statistic the functions define, in the builder's order (psi, js, ks and wasserstein
        # or chi2, unseen_rate: one chi-square p-value for all of them)
        assert [v.statistic for v in cell] == list(want)
        assert len({v.p_value for v in cell[2:]}) == 1
        for v in cell:
            assert math.isclose(v.value, want[v.statistic], rel_tol=1e-9, abs_tol=1e-12), (name, v.statistic)
            assert (v.slice, v.window_s, v.feature, v.signal) == ("all", 1800.0, name, "input")
        checked += 1
    assert checked >= 4 and any(s.unseen_index is not None for s in lay.features)


RULED = ("input.psi", "output.psi", "input.js", "input.ks", "input.wasserstein", "input.chi2",
         "input.unseen_rate", "input.missing_rate", "input.missing_rate_delta", "output.js",
         "input.p50", "input.p95", "input.p99", "input.p99_shift",  # quantile tables, read as arrays too
         # plain values (the evaluator skips those that neither breach nor belong to an alert with a state)
         "input.rank_cusum", "output.mean_confidence_delta", "quality.accuracy_gap",
         "quality.adwin_drift", "quality.bar_evidence", "label_coverage.coverage_delta")


class EveryValue(AlertEvaluator):
    """The evaluator as it was before the tables: every value a rule names counted, in order."""

    def _candidates(self, values: ValueSet) -> _Candidates:
        found = _Candidates()
        for i, v in enumerate(values):
            rule = self.rules.get(f"{v.signal}.{v.statistic}")
            if rule is not None:
                self._consider(found, v, rule, (i, 0, 0))
        return found


def _observed(name: str) -> np.ndarray:
    signal, statistic = name.split(".")
    return np.array([v.value for s in SNAPSHOTS[::6] for v in s.values
                     if v.signal == signal and v.statistic == statistic and math.isfinite(v.value)])


OBSERVED = {name: _observed(name) for name in RULED}


def test_every_ruled_statistic_has_values_on_the_stream():
    assert all(OBSERVED[name].size > 10 for name in RULED), [n for n in RULED if OBSERVED[n].size <= 10]


@st.composite
def rules(draw) -> dict[str, Rule]:
    out = {}
    for name in draw(st.lists(st.sampled_from(RULED), min_size=1, max_size=5, unique=True)):
        seen = OBSERVED[name]
        lo, hi = sorted(draw(st.lists(st.floats(0.3, 0.999), min_size=2, max_size=2)))
        direction = draw(st.sampled_from(["above", "above", "below"]))
        if direction == "above":
            warning, critical = float(np.quantile(seen, lo)), float(np.quantile(seen, hi))
        else:
            warning, critical = float(np.quantile(seen, 1 - lo)), float(np.quantile(seen, 1 - hi))
        clear = draw(st.none() | st.just(warning * (0.9 if direction == "above" else 1.1)))
        out[name] = Rule(name, warning, critical, direction, min_samples=draw(st.integers(1, 400)),
                         hold_evaluations=draw(st.integers(1, 3)), clear_evaluations=draw(st.integers(1, 3)),
                         clear=clear if clear is not None and warning > 0 else None)
    return out


@settings(max_examples=25, deadline=None)
@given(rules(), st.sampled_from([0.01, 0.05, 0.5]))
def test_alerts_from_tables_equal_alerts_from_every_value(ruleset, alpha):
    columnar, plain = AlertEvaluator(ruleset, alpha=alpha), EveryValue(ruleset, alpha=alpha)
    for snap in SNAPSHOTS:
        a = columnar.evaluate(snap, {}, snap.evaluated_at)
        b = plain.evaluate(dataclasses.replace(snap, values=tuple(snap.values)), {}, snap.evaluated_at)
        assert [(t.fingerprint, t.from_state, t.to_state, t.alert) for t in a] == \
            [(t.fingerprint, t.from_state, t.to_state, t.alert) for t in b]
        assert columnar.states == plain.states


def test_alerts_from_tables_fire_and_resolve_on_the_stream():
    """The equivalence above is not vacuous: on this stream a psi rule fires and later resolves
    (hysteresis and clearing read the cells of an alert with a state), a missing-bin rule fires."""
    ruleset = {"input.psi": Rule("input.psi", 0.2, 0.3, min_samples=50, hold_evaluations=2, clear_evaluations=2),
               "input.missing_rate_delta": Rule("input.missing_rate_delta", 0.1, 0.15, min_samples=50)}
    ev = AlertEvaluator(ruleset)
    moves = {(t.to_state, t.alert.statistic) for s in SNAPSHOTS for t in ev.evaluate(s, {}, s.evaluated_at)}
    assert {("firing", "psi"), ("resolved", "psi"), ("firing", "missing_rate_delta")} <= moves


def test_value_set_is_the_sequence_of_its_values():
    values = ValueSet.of(SNAPSHOTS[-1].values)
    plain = tuple(values)
    assert values == plain and len(values) == len(plain) and values[3] == plain[3]
    assert values.models() == {v.model_id for v in plain} == {"m1"}
    segments = [x for x in values.items if isinstance(x, Segment)]
    assert len(values.items) < len(plain) and segments
    assert sum(len(s.values()) for s in segments) + sum(1 for _ in values.scalars) == len(plain)
    assert ValueSet.of(plain).tables == [] and ValueSet.of(plain) == values
    with pytest.raises(TypeError):
        hash(values)
    assert isinstance(plain[0], SignalValue)


def test_transitions_follow_where_each_alert_first_appears_even_when_that_value_is_skipped():
    """Alert K's first value (a short window, no breach) comes before alert J's, its breach after:
    K's transition still comes first, as when every value was counted."""
    rules_ = {"quality.accuracy_gap": Rule("quality.accuracy_gap", 0.02, 0.05, min_samples=1, hold_evaluations=1),
              "input.rank_cusum": Rule("input.rank_cusum", 6.0, 7.0, min_samples=1, hold_evaluations=1)}
    k_short = SignalValue("m", "all", "quality", "was_correct", "accuracy_gap", 0.0, 500, True, 0.5, 0.5,
                          window_s=300.0)
    j = SignalValue("m", "all", "input", "x", "rank_cusum", 9.0, 500, True)
    k_main = SignalValue("m", "all", "quality", "was_correct", "accuracy_gap", 0.1, 500, True, 1e-9, 1e-9,
                         window_s=3600.0)
    snap = Snapshot(100.0, 0.0, 100.0, (k_short, j, k_main))
    for ev in (AlertEvaluator(rules_), EveryValue(rules_)):
        assert [t.alert.statistic for t in ev.evaluate(snap, {}, 100.0)] == ["accuracy_gap", "rank_cusum"]


def test_quantile_table_cells_equal_each_feature_sketch_of_the_window_events():
    """Every cell of the quantile table against the feature's sketch built from the raw values of
    the window's events of that slice (``SketchSpec.counts`` and ``quantiles``: no ring, no running
    sums, no ``segment_quantiles``); the aggregate's ``p99_shift`` against the reference's p99."""
    eng = DriftEngine(bucket_seconds=60, window_buckets=30, allowed_lateness_s=120, min_samples=50,
                      auto_reference_events=3000, protected_slices={"language": ["en", "es"]})
    rng = np.random.default_rng(5)
    kept = []
    for q in range(40 * 4):
        ev, lab = make_batch(rng, SPEC, 60, 15.0 * q, 15.0 * (q + 1))
        eng.observe(ev, lab, 15.0 * (q + 1))
        kept += ev
    now = 40 * 60.0 - 1e-6
    snap = eng.evaluate(now)
    values = ValueSet.of(snap.values)
    (table,) = values.quantile_tables
    profile = eng.reference("m1")
    assert profile is not None
    specs = {f.name: f for f in profile.features}
    window = [e for e in kept if snap.window_start <= e.served_at.timestamp() < snap.window_end]
    assert table.slices == ("all", "language=en", "language=es") and len(table.features) >= 3
    for r, label in enumerate(table.slices):
        rows = window if label == "all" else [e for e in window if f"language={e.slice['language']}" == label]
        for c, name in enumerate(table.features):
            sketch = specs[name].sketch
            assert sketch is not None
            counts = sketch.counts(np.array([float(e.input_features.get(name, getattr(e, name, None))) for e in rows]))
            want = sketch.quantiles(counts, (0.5, 0.95, 0.99))
            cell = table.cell(r, c)
            assert [v.statistic for v in cell][:3] == ["p50", "p95", "p99"]
            assert [v.value for v in cell[:3]] == want and {v.sample_count for v in cell} == {len(rows)}
            assert {(v.slice, v.feature, v.signal, v.window_s) for v in cell} == {(label, name, "input", 1800.0)}
            if label == "all":
                ref = sketch.quantile(profile.aggregate.sketch_counts(name, sketch.size), 0.99)
                shift = cell[3]
                assert shift.statistic == "p99_shift" and shift.baseline == ref
                assert shift.value == pytest.approx(abs(want[2] - ref) / max(abs(ref), 1e-12), rel=1e-12)
    # the materialized values are the table's arrays read cell by cell
    for statistic in ("p50", "p95", "p99", "p99_shift"):
        emitted = table.emitted(statistic)
        got = [v.value for r in range(len(table.slices)) for c in range(len(table.features))
               for v in table.cell(r, c) if v.statistic == statistic]
        assert got == table.values_of(statistic)[emitted].tolist()
