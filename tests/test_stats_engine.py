"""DriftEngine on seeded synthetic streams with known change points, restart, lateness, cohorts, lineage.

Thresholds mirror the default alert rules in ``monitor.config._default_rules`` (input.psi 0.2,
output.psi 0.2, output.mean_confidence_delta 0.05, quality.accuracy_gap > 0, cohort.psi 0.2),
and only values with ``sufficient`` samples count, as the alert rules do.
"""

from __future__ import annotations

import pickle
from datetime import UTC, datetime

import msgspec
import numpy as np
import pytest

from monitor.drift import DriftEngine
from monitor.events import InferenceEvent
from monitor.records import Label, LabelChange, QualityBar
from monitor.snapshot import Snapshot
from tests.stats_fixtures import StreamSpec, make_batch, to_rows

ONSET = 3600.0


def engine(**kw) -> DriftEngine:
    args = dict(bucket_seconds=60, window_buckets=10, allowed_lateness_s=120, min_samples=200,
                 auto_reference_events=5000, protected_slices={"language": ["es"], "domain": ["regulatory"]})
    args.update(kw)
    return DriftEngine(**args)


def run(eng: DriftEngine, spec: StreamSpec, minutes: int, per_minute: int, seed: int = 0,
        every: int = 2) -> list[Snapshot]:
    rng = np.random.default_rng(seed)
    snaps = []
    for m in range(minutes):
        ev, lab = make_batch(rng, spec, per_minute, 60.0 * m, 60.0 * (m + 1))
        eng.observe(ev, lab, 60.0 * (m + 1))
        if (m + 1) % every == 0:
            snaps.append(eng.evaluate(60.0 * (m + 1)))
    return snaps


def value(snap: Snapshot, model: str, slice_: str, signal: str, feature: str, statistic: str):
    hits = [v for v in snap.values if (v.model_id, v.slice, v.signal, v.feature, v.statistic)
            == (model, slice_, signal, feature, statistic)]
    assert len(hits) <= 1
    return hits[0] if hits else None


def crossing_times(snaps, model, slice_, signal, feature, statistic, threshold) -> list[float]:
    """Evaluations where the value breaches as a rule sees it: enough samples, past the threshold
    and, where it has a p-value, significant after the correction (at the engine's alpha, 0.01)."""
    out = []
    for s in snaps:
        v = value(s, model, slice_, signal, feature, statistic)
        if v is None or not v.sufficient or v.value <= threshold:
            continue
        if v.p_value_adjusted is None or v.p_value_adjusted < 0.01:
            out.append(s.evaluated_at)
    return out


def assert_detected_after_onset(times: list[float]) -> None:
    assert times, "never detected"
    assert min(times) >= ONSET, f"crossed before onset at {min(times)}"
    assert min(times) <= ONSET + 15 * 60, "detected too late"


def test_input_shift_detected_after_onset_only():
    snaps = run(engine(), StreamSpec(input_shift=1.0, onset=ONSET), minutes=90, per_minute=1000)
    assert_detected_after_onset(crossing_times(snaps, "m1", "all", "input", "x0", "psi", 0.2))
    assert crossing_times(snaps, "m1", "all", "input", "c0", "psi", 0.2) == []  # unshifted feature
    # heavy tail: tokens_in untouched, so its p99 never shifts by 50 %
    assert crossing_times(snaps, "m1", "all", "input", "tokens_in", "p99_shift", 0.5) == []
    last = value(snaps[-1], "m1", "all", "input", "x0", "ks")
    assert last is not None and last.value > 0.3


def test_output_shift_detected_after_onset_only():
    snaps = run(engine(), StreamSpec(output_shift=0.25, onset=ONSET), minutes=90, per_minute=1000)
    assert_detected_after_onset(crossing_times(snaps, "m1", "all", "output", "output", "psi", 0.2))
    assert_detected_after_onset(
        crossing_times(snaps, "m1", "all", "output", "confidence", "mean_confidence_delta", 0.05))
    assert crossing_times(snaps, "m1", "all", "input", "x0", "psi", 0.2) == []


def test_overall_quality_drop_detected_after_onset_only():
    eng = engine(quality_bars={"*": {"all": QualityBar(0.88)}})
    snaps = run(eng, StreamSpec(accuracy_drop=0.1, onset=ONSET), minutes=90, per_minute=1000)
    assert_detected_after_onset(crossing_times(snaps, "m1", "all", "quality", "was_correct", "accuracy_gap", 0.0))
    adwin = crossing_times(snaps, "m1", "all", "quality", "was_correct", "adwin_drift", 0.5)
    assert adwin and min(adwin) >= ONSET
    v = value(snaps[-1], "m1", "all", "quality", "was_correct", "accuracy_gap")
    assert v is not None and v.baseline == 0.88


def test_protected_slice_regression_detected_while_aggregate_holds():
    """A 5-point drop on language=es (5% of traffic) crosses its bar; the aggregate moves < 0.5 points."""
    spec = StreamSpec(slice_accuracy_drop={("language", "es"): 0.05}, onset=ONSET)
    bars = {"*": {"all": QualityBar(0.88), "language=es": QualityBar(0.90)}}
    eng = engine(quality_bars=bars, protected_slices={"language": ["es", "ja"]})
    snaps = run(eng, spec, minutes=90, per_minute=2000)
    assert_detected_after_onset(
        crossing_times(snaps, "m1", "language=es", "quality", "was_correct", "accuracy_gap", 0.0))
    assert crossing_times(snaps, "m1", "all", "quality", "was_correct", "accuracy_gap", 0.0) == []
    assert crossing_times(snaps, "m1", "language=ja", "quality", "was_correct", "accuracy_gap", 0.0) == []
    pre = [value(s, "m1", "all", "quality", "was_correct", "accuracy") for s in snaps
           if ONSET - 600 <= s.evaluated_at < ONSET]
    post = [value(s, "m1", "all", "quality", "was_correct", "accuracy") for s in snaps
            if s.evaluated_at >= ONSET + 600]
    moved = abs(np.mean([v.value for v in post if v]) - np.mean([v.value for v in pre if v]))
    assert moved < 0.005


def test_window_counts_equal_numpy_on_the_same_events():
    eng = engine(window_buckets=5)
    rng = np.random.default_rng(4)
    spec = StreamSpec()
    kept = []
    for m in range(12):
        ev, lab = make_batch(rng, spec, 700, 60.0 * m, 60.0 * (m + 1))
        eng.observe(ev, lab, 60.0 * (m + 1))
        kept.append((ev, lab))
    profile = eng.reference("m1")
    assert profile is not None
    snap = eng.evaluate(719.0)  # the window is the 5 buckets [420, 720): the one holding `now` and 4 before
    assert (snap.window_start, snap.window_end) == (420.0, 720.0)
    window = [e for ev, _ in kept[-5:] for e in ev]
    x = np.array([e.input_features["x0"] for e in window])
    edges = np.asarray(profile.feature("x0").edges)
    cur = np.concatenate([[np.sum(x < edges[0])], np.histogram(x, edges)[0], [np.sum(x > edges[-1])]])
    ref = profile.aggregate.feature_counts("x0")[:-1]
    from scipy.spatial.distance import jensenshannon

    js = value(snap, "m1", "all", "input", "x0", "js")
    assert js is not None and js.sample_count == len(window)
    assert js.value == pytest.approx(jensenshannon(ref / ref.sum(), cur / cur.sum(), base=2), abs=1e-9)
    acc = value(snap, "m1", "all", "quality", "was_correct", "accuracy")
    labels = [lc.new.was_correct for _, lab in kept[-5:] for lc in lab]
    assert acc is not None and acc.value == pytest.approx(np.mean(labels), abs=1e-12)
    es = [e for e in window if e.slice["language"] == "es"]
    n_es = value(snap, "m1", "language=es", "input", "x0", "missing_rate")
    assert n_es is not None and n_es.sample_count == len(es)
    p99 = value(snap, "m1", "all", "input", "tokens_in", "p99")
    exact = np.quantile([e.tokens_in for e in window], 0.99, method="lower")
    assert p99 is not None and abs(p99.value - exact) <= 0.01 * exact


def _delayed_stream(seed: int):
    """Batches whose labels arrive one batch late, 10 % of them corrected later (old -> new)."""
    rng = np.random.default_rng(seed)
    spec = StreamSpec(input_shift=0.5, onset=1200.0)
    batches = []
    pending: list[LabelChange] = []
    all_events = []
    final: dict[str, LabelChange] = {}
    for m in range(30):
        ev, lab = make_batch(rng, spec, 600, 60.0 * m, 60.0 * (m + 1))
        all_events += ev
        corrections = []
        for lc in pending[::10]:
            new = Label(not lc.new.was_correct, 0.5, "judge", lc.new.observed_at + 60, judge_model="j2")
            corrections.append(LabelChange(lc.request_id, lc.model_id, lc.served_at, lc.slice,
                                           lc.input_features, lc.new, new))
        batches.append((ev, pending + corrections, 60.0 * (m + 1)))
        for lc in pending + corrections:
            final[lc.request_id] = lc
        pending = lab
    return batches, all_events, list(final.values())


# what a rebuild from the window's rows cannot give back (a checkpoint does, see test_takeover):
# ADWIN's history and the statistics counted since the model's first prediction
SINCE_FIRST = ("adwin", "bar_evidence", "accuracy_since_first", "delay_p")


def _comparable(snap: Snapshot):
    return sorted((v.model_id, v.slice, v.signal, v.feature, v.statistic, v.value, v.sample_count,
                   v.p_value, v.p_value_adjusted, v.baseline, v.reference_id)
                  for v in snap.values if not v.statistic.startswith(SINCE_FIRST))


def test_restart_rebuild_equals_uninterrupted_run():
    batches, events, final_labels = _delayed_stream(9)
    live = engine()
    for ev, lab, now in batches:
        live.observe(ev, lab, now)
    now = batches[-1][2]
    assert live.late_events_total == 0
    profile = live.reference("m1")
    assert profile is not None
    restarted = engine()
    restarted.set_reference("m1", profile)
    restarted.rebuild(to_rows(events, final_labels), now)
    a, b = live.evaluate(now), restarted.evaluate(now)
    assert len(a.values) > 100
    assert _comparable(a) == _comparable(b)
    # and a rebuild of a polars frame of the same rows gives the same
    import polars as pl

    again = engine()
    again.set_reference("m1", profile)
    again.rebuild(pl.DataFrame(to_rows(events, final_labels)), now)
    assert _comparable(again.evaluate(now)) == _comparable(a)


def test_late_events_are_counted_and_not_added():
    eng = engine(allowed_lateness_s=120)
    rng = np.random.default_rng(1)
    spec = StreamSpec()
    for m in range(10):
        ev, lab = make_batch(rng, spec, 600, 60.0 * m, 60.0 * (m + 1))
        eng.observe(ev, lab, 60.0 * (m + 1))
    before = eng.evaluate(600.0)
    n_before = value(before, "m1", "all", "input", "x0", "missing_rate").sample_count
    late, _ = make_batch(rng, spec, 100, 300.0, 400.0)  # watermark ~600, lateness 120 -> all late
    ok, _ = make_batch(rng, spec, 50, 500.0, 540.0)  # within lateness
    eng.observe(late + ok, [], 600.0)
    after = eng.evaluate(600.0)
    assert after.late_events_total == before.late_events_total + 100
    assert value(after, "m1", "all", "input", "x0", "missing_rate").sample_count == n_before + 50


def test_cohort_balance_between_models():
    eng = engine(cohorts=[["m1", "m2"]], auto_reference_events=2000)
    rng = np.random.default_rng(5)
    a, b = StreamSpec(model_id="m1"), StreamSpec(model_id="m2", input_shift=1.0, onset=0.0)
    for m in range(12):
        ev1, l1 = make_batch(rng, a, 1000, 60.0 * m, 60.0 * (m + 1))
        ev2, l2 = make_batch(rng, b, 1000, 60.0 * m, 60.0 * (m + 1))
        eng.observe(ev1 + ev2, l1 + l2, 60.0 * (m + 1))
    snap = eng.evaluate(720.0)
    psi_x0 = value(snap, "m2", "all", "cohort", "x0", "psi")
    psi_c0 = value(snap, "m2", "all", "cohort", "c0", "psi")
    assert psi_x0 is not None and psi_x0.sufficient and psi_x0.value > 0.2
    assert psi_c0 is not None and psi_c0.value < 0.2
    assert psi_x0.reference_id == eng.reference("m1").id


def test_lineage_changes_reported_with_first_seen():
    spec = StreamSpec(embedding_after_onset="e2", onset=600.0)
    eng = engine(auto_reference_events=1000)
    run(eng, spec, minutes=15, per_minute=200, every=15)
    snap = eng.evaluate(900.0)
    changes = [c for c in snap.lineage_changes if c.field == "embedding_model"]
    assert len(changes) == 1
    assert (changes[0].from_value, changes[0].to_value) == ("e1", "e2")
    assert 600.0 <= changes[0].first_seen < 660.0


def test_pickle_round_trip_gives_same_snapshot():
    eng = engine(auto_reference_events=1000)
    run(eng, StreamSpec(), minutes=6, per_minute=500, every=6)
    clone = pickle.loads(pickle.dumps(eng))
    assert _comparable(clone.evaluate(360.0)) == _comparable(eng.evaluate(360.0))


def test_auto_reference_published_once_and_drop_models():
    eng = engine(auto_reference_events=1000)
    run(eng, StreamSpec(), minutes=3, per_minute=500, every=3)
    refs = eng.new_references()
    assert [r.model_id for r in refs] == ["m1"] and refs[0].source == "auto"
    assert eng.new_references() == []
    assert eng.state_size > 0
    eng.drop_models(["m1"])
    assert eng.state_size == 0 and eng.evaluate(180.0).values == ()
    assert eng.reference("m1") is not None


def test_p_values_adjusted_per_signal_family_across_features_and_slices():
    snaps = run(engine(), StreamSpec(), minutes=10, per_minute=800, every=10)
    tested = [v for v in snaps[-1].values if v.p_value is not None]
    assert len(tested) >= 6
    from scipy.stats import false_discovery_control

    from monitor.drift.signals import DISTRIBUTION_STATISTICS

    # one hypothesis per test (a feature's distribution statistics share theirs), one BH family per
    # signal, each family at alpha / G (scipy's BH, times the number of families G)
    def hypothesis(v):
        test = "distribution" if v.statistic in DISTRIBUTION_STATISTICS else v.statistic
        return (v.window_s, v.slice, v.signal, v.feature, test)

    families: dict[str, dict] = {}
    for v in tested:
        families.setdefault(v.signal, {}).setdefault(hypothesis(v), v.p_value)
    want = {}
    for fam in families.values():
        for k, p in zip(fam, false_discovery_control(list(fam.values()), method="bh"), strict=True):
            want[k] = min(1.0, p * len(families))
    assert [v.p_value_adjusted for v in tested] == pytest.approx([want[hypothesis(v)] for v in tested], abs=1e-12)


def test_protected_key_looked_up_in_slice_then_input_features():
    from monitor.stats.columns import slice_membership

    slices = [{"language": "es"}, {}, {"language": "en"}, {}]
    feats = [{"language": "en"}, {"language": "es"}, {}, {"tier": 3.0, "language": None}]
    got = slice_membership(slices, feats, [("language", "es"), ("tier", "3")])
    assert [g.tolist() for g in got] == [[0, 1], [3]]


def test_labels_before_the_reference_are_replayed_with_the_buffer():
    eng = engine(auto_reference_events=1500)
    rng = np.random.default_rng(8)
    ev, lab = make_batch(rng, StreamSpec(), 1000, 0.0, 60.0)
    eng.observe(ev, lab, 60.0)
    assert eng.reference("m1") is None and eng.evaluate(60.0).values == ()
    ev2, lab2 = make_batch(rng, StreamSpec(), 1000, 60.0, 120.0)
    eng.observe(ev2, lab2, 120.0)
    acc = value(eng.evaluate(120.0), "m1", "all", "quality", "was_correct", "accuracy")
    assert acc is not None and acc.sample_count == len(lab) + len(lab2)
    assert acc.value == pytest.approx(np.mean([lc.new.was_correct for lc in lab + lab2]))


def test_buffered_models_are_capped_keeping_the_largest_buffers():
    eng = engine(auto_reference_events=10_000, max_buffered_models=3)
    rng = np.random.default_rng(7)
    sizes = {f"m{i}": n for i, n in enumerate([5, 40, 3, 90, 12, 60, 1, 25])}
    for model_id, n in sizes.items():
        ev, _ = make_batch(rng, StreamSpec(model_id=model_id), n, 0.0, 60.0)
        eng.observe(ev, [], 60.0)
    kept = sorted(sizes, key=lambda m: -sizes[m])[:3]  # the three largest: 90, 60, 40
    assert sorted(eng.models) == sorted(kept)
    assert eng.unreferenced_events_total == sum(sizes.values()) - sum(sizes[m] for m in kept)
    assert eng.evaluate(60.0).unreferenced_events_total == eng.unreferenced_events_total


def test_auto_profile_keeps_the_most_present_features_only():
    eng = engine(auto_reference_events=200, max_features=6)
    rng = np.random.default_rng(8)
    ev, _ = make_batch(rng, StreamSpec(n_numeric=3, n_categorical=1, n_boolean=1), 200, 0.0, 60.0)
    junk = [f"junk{j:03d}" for j in range(100)]
    for i, e in enumerate(ev[:10]):  # ten events carry 100 made-up feature names between them
        e.input_features.update({name: 1.0 for name in junk[i * 10 : (i + 1) * 10]})
    eng.observe(ev, [], 60.0)
    profile = eng.reference("m1")
    assert profile is not None
    presence: dict[str, int] = {}
    for e in ev:
        for k in e.input_features:
            presence[k] = presence.get(k, 0) + 1
    expected = sorted(sorted(presence, key=lambda k: (-presence[k], k))[:6])
    names = sorted(f.name for f in profile.features if f.name != "tokens_in")
    assert names == expected and sum(n.startswith("junk") for n in names) == 1  # 5 real + 1 tie-broken junk
    snap = eng.evaluate(60.0)
    assert {v.feature for v in snap.values if v.signal == "input"} <= {*expected, "tokens_in"}


def test_lateness_depends_on_arrival_only_and_a_rebuild_counts_what_live_counted():
    """One event far ahead cannot make on-time events late; a backlog read late still counts while
    its buckets are in the window; a rebuild from the rows (arrival = ingested_at) equals the live run.
    Oracle: the definition, per event, in plain Python."""
    bucket, w, lateness, ahead = 60.0, 10, 600.0, 600.0
    eng = engine(window_buckets=w, allowed_lateness_s=lateness, auto_reference_events=500)
    rng = np.random.default_rng(21)
    spec = StreamSpec()
    warm, _ = make_batch(rng, spec, 500, 0.0, 60.0)
    eng.observe(warm, [], 60.0)  # the reference profile; not part of what is compared
    profile = eng.reference("m1")
    assert profile is not None
    arrivals: list[tuple[InferenceEvent, float]] = []
    for m in range(2, 30):
        now = 60.0 * m
        ev, _ = make_batch(rng, spec, 200, now - 60.0, now)
        if m == 12:  # one event stamped 570 s ahead, in its own batch
            ev[0] = msgspec.structs.replace(ev[0], served_at=datetime.fromtimestamp(now + 570.0, tz=UTC))
        if m == 20:  # a backlog served 8 to 12 minutes earlier arrives now
            old, _ = make_batch(rng, spec, 300, now - 720.0, now - 480.0)
            ev = ev + old
        arrivals += [(e, now) for e in ev]
        eng.observe(ev, [], now)
    end = 60.0 * 29

    def on_time(t: float, arrival: float) -> bool:  # the definition, written out
        a, b = int(arrival // bucket), int(t // bucket)
        return a - w < b <= a + ahead / bucket and t >= arrival - lateness

    cur = int(end // bucket)
    expected = sum(1 for e, a in arrivals
                   if on_time(e.served_at.timestamp(), a) and cur - w < e.served_at.timestamp() // bucket <= cur)
    late = sum(1 for e, a in arrivals if not on_time(e.served_at.timestamp(), a))
    live = eng.evaluate(end)
    assert value(live, "m1", "all", "input", "x0", "missing_rate").sample_count == expected
    assert live.late_events_total == late
    backlog = [e.served_at.timestamp() for e, a in arrivals if a == 1200.0 and e.served_at.timestamp() < 1080.0]
    assert len(backlog) == 300 and late == sum(1 for t in backlog if t < 660.0) and 0 < late < 300
    # the future event made nothing late: every event of the batch after it counted
    assert all(on_time(e.served_at.timestamp(), a) for e, a in arrivals if a == 780.0)
    rows = to_rows([e for e, _ in arrivals], [])
    for row, (_, a) in zip(rows, arrivals, strict=True):
        row["ingested_at"] = a
    rows.sort(key=lambda r: (r["served_at"], r["request_id"]))
    rebuilt = engine(window_buckets=w, allowed_lateness_s=lateness, auto_reference_events=500)
    rebuilt.set_reference("m1", profile)
    rebuilt.reset_models(["m1"])
    for k in range(0, len(rows), 700):  # in chunks, as Monitor.rebuild reads them
        rebuilt.replay(rows[k : k + 700], end)
    assert _comparable(rebuilt.evaluate(end)) == _comparable(live)
    assert rebuilt.late_events_total == late


def test_checkpoint_restore_then_continue_equals_the_uninterrupted_run():
    """A model restored from its checkpoint, fed the same later batches, evaluates exactly as the
    engine that never stopped: counters, sketches, ADWIN detectors and lineage changes included."""
    spec = StreamSpec(embedding_after_onset="e2", onset=420.0, slice_accuracy_drop={("language", "es"): 0.5})
    live = engine(auto_reference_events=1000)
    rng = np.random.default_rng(11)
    batches = [(*make_batch(rng, spec, 400, 60.0 * m, 60.0 * (m + 1)), 60.0 * (m + 1)) for m in range(14)]
    for ev, lab, now in batches[:6]:
        live.observe(ev, lab, now)
    blob = live.checkpoint("m1")
    assert blob is not None and live.checkpoint("nobody") is None
    restored = engine(auto_reference_events=1000)
    profile = live.reference("m1")
    assert profile is not None
    restored.set_reference("m1", profile)
    assert restored.restore("m1", blob)
    for ev, lab, now in batches[6:]:
        live.observe(ev, lab, now)
        restored.observe(ev, lab, now)
    a, b = live.evaluate(840.0), restored.evaluate(840.0)
    assert any(v.signal == "quality" and v.statistic == "adwin_drift" for v in a.values)
    assert _comparable(a) == _comparable(b)
    assert a.lineage_changes == b.lineage_changes and len(a.lineage_changes) == 1
    # a checkpoint taken with another layout or window does not fit, and leaves the state alone
    other = engine(auto_reference_events=1000, window_buckets=20)
    other.set_reference("m1", profile)
    assert not other.restore("m1", blob)
    assert not restored.restore("m1", b"not a checkpoint")
    assert _comparable(restored.evaluate(840.0)) == _comparable(b)
