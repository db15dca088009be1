"""The rank CUSUM for slow drift (issue 10, item 4).

* ``rank_scores`` equals an independent oracle: scipy's average ranks of the expanded reference
  sample, and numpy's variance of those scores (hypothesis);
* ``RankCusum`` equals a plain per-detector recursion written out in Python (hypothesis);
* under no change its detectors cross ``c`` no sooner than ``c`` buckets on average (the
  e-detector's guarantee), simulated on discrete quantile bins with few events per bucket, and a
  finite reference with the margin stays quiet for 20,000 buckets;
* in the engine a 1 sd/h ramp (400 events a minute) crosses the default rule (6) within 20 minutes while the window's
  PSI is still below its threshold, and the tracker's state survives a checkpoint.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import rankdata

from monitor.drift import DriftEngine
from monitor.stats.rank_cusum import DELTAS, RankCusum, rank_scores
from tests.stats_fixtures import StreamSpec, make_batch


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 40), min_size=2, max_size=12).filter(lambda c: sum(c) > 0))
def test_rank_scores_equal_scipy_mid_ranks_of_the_expanded_sample(counts):
    c = np.asarray(counts, dtype=np.int64)
    u, sd = rank_scores(c)
    sample = np.repeat(np.arange(c.size), c)
    n = sample.size
    ranks = rankdata(sample, method="average")  # 1..n, ties averaged
    oracle = ranks / n - 1 / (2 * n)  # the mid-rank of each value as a share of the sample
    for b in np.flatnonzero(c):
        assert math.isclose(u[b], oracle[sample == b][0], abs_tol=1e-12)
    assert math.isclose(float(np.mean(u[sample])), 0.5, abs_tol=1e-12)
    assert math.isclose(sd, float(np.std(u[sample])), abs_tol=1e-12)


def _oracle(margin, xs, ns, deltas):
    """The recursion written out per detector: L <- max(L, 0) + d (+-x) - n (d^2 / 2 + d margin)."""
    k = len(margin)
    out = []
    for s in range(k):
        best = -math.inf
        for sign in (1.0, -1.0):
            for d in deltas:
                log = 0.0
                for x, n in zip(xs, ns, strict=True):
                    if n[s] > 0:
                        log = max(log, 0.0) + d * sign * x[s] - n[s] * (d * d / 2 + d * margin[s])
                best = max(best, log)
        out.append(best / math.log(10) - math.log10(k * 2 * len(deltas)))
    return out


@settings(max_examples=80, deadline=None)
@given(
    st.integers(1, 4).flatmap(lambda k: st.tuples(
        st.lists(st.floats(0, 0.2), min_size=k, max_size=k),
        st.lists(st.tuples(st.lists(st.floats(-30, 30), min_size=k, max_size=k),
                           st.lists(st.integers(0, 100), min_size=k, max_size=k)), min_size=1, max_size=12),
    ))
)
def test_rank_cusum_equals_the_recursion_per_detector(case):
    margin, buckets = case
    c = RankCusum(np.asarray(margin))
    for b, (x, n) in enumerate(buckets):
        c.update(np.asarray(x), np.asarray(n), bucket=b)
    want = _oracle(margin, [x for x, _ in buckets], [n for _, n in buckets], DELTAS)
    got = c.log10_evidence
    for s in range(len(margin)):
        assert math.isclose(got[s], want[s], rel_tol=1e-9, abs_tol=1e-9)


def _null_run_lengths(runs: int, cap: int, threshold: float, n_per_bucket: int, seed: int) -> np.ndarray:
    """Buckets until one stream's best detector first crosses ``threshold`` (e-value), ``cap`` if never;
    each stream one independent run on 10 quantile bins of a skewed reference (exact probabilities)."""
    rng = np.random.default_rng(seed)
    ref = rng.gamma(2.0, 1.0, 200_000)
    edges = np.quantile(ref, np.linspace(0.1, 0.9, 9))
    p = np.bincount(np.searchsorted(edges, ref), minlength=10) / ref.size
    u, sd = rank_scores(np.rint(p * 1e9).astype(np.int64))
    c = RankCusum(np.zeros(runs))
    first = np.full(runs, cap)
    log_c = math.log(threshold)
    for b in range(cap):
        counts = rng.multinomial(n_per_bucket, p, size=runs)
        x = (counts @ u - n_per_bucket / 2) / sd
        c.update(x, np.full(runs, n_per_bucket), bucket=b)
        crossed = c.log_stat.reshape(runs, -1).max(axis=1) >= log_c
        first = np.where(crossed & (first == cap), b + 1, first)
    return first


@pytest.mark.parametrize("n_per_bucket", [5, 30])
def test_no_change_crosses_c_no_sooner_than_c_buckets_on_average(n_per_bucket):
    # each run holds 6 detectors: the union's guarantee is c / 6 buckets (censored runs count at
    # the cap, which only lowers the mean)
    c = 300.0
    lengths = _null_run_lengths(runs=400, cap=3000, threshold=c, n_per_bucket=n_per_bucket, seed=1)
    assert lengths.mean() >= c / 6, lengths.mean()


def test_a_finite_reference_with_its_margin_stays_quiet():
    # the reference is 2,000 draws; the stream comes from the true distribution: the reference's
    # estimation error is a standing shift the margin must absorb
    rng = np.random.default_rng(7)
    edges = np.quantile(rng.normal(size=2000), np.linspace(0.1, 0.9, 9))
    ref_counts = np.bincount(np.searchsorted(edges, rng.normal(size=2000)), minlength=10)
    u, sd = rank_scores(ref_counts)
    streams = 50
    c = RankCusum(np.full(streams, 3.0 / math.sqrt(2000)))
    worst = -math.inf
    for b in range(400):
        x_raw = rng.normal(size=(streams, 200))
        bins = np.searchsorted(edges, x_raw)
        x = (u[bins].sum(axis=1) - 200 / 2) / sd
        c.update(x, np.full(streams, 200), bucket=b)
        worst = max(worst, float(c.log10_evidence.max()))
    assert worst < 2.0, worst  # 20,000 stream-buckets, nowhere near the default rule (6)


def _ramp_engine(trend_settle_s: float = 60.0) -> DriftEngine:
    return DriftEngine(bucket_seconds=60, window_buckets=60, allowed_lateness_s=120, min_samples=200,
                       auto_reference_events=8000, trend_settle_s=trend_settle_s)


def _feed_ramp(eng: DriftEngine, onset: float, sd_per_hour: float, minutes: int, per_minute: int = 400):
    rng = np.random.default_rng(3)
    base = StreamSpec(n_numeric=1, onset=0.0)
    for q in range(minutes * 4):
        start, end = 15.0 * q, 15.0 * (q + 1)
        shift = max(0.0, (start - onset) / 3600.0 * sd_per_hour)
        ev, lab = make_batch(rng, replace(base, input_shift=shift), per_minute // 4, start, end)
        eng.observe(ev, lab, end)
        yield end, eng.evaluate(end - 1e-6)


def _value(snap, statistic: str):
    return next((v for v in snap.values if (v.statistic, v.feature, v.slice) == (statistic, "x0", "all")), None)


def test_a_slow_ramp_crosses_the_rule_long_before_the_window_moves():
    onset = 90 * 60.0
    eng = _ramp_engine()
    crossed = None
    psi_then = None
    before = -math.inf
    for end, snap in _feed_ramp(eng, onset, sd_per_hour=1.0, minutes=130):
        v = _value(snap, "rank_cusum")
        if v is None:
            continue
        if end < onset:
            before = max(before, v.value)
        elif crossed is None and v.value >= 6.0:
            crossed = end
            psi = next(p for p in snap.values if (p.statistic, p.feature, p.slice, p.window_s) ==
                       ("psi", "x0", "all", 3600.0))
            psi_then = psi.value
            # the onset estimate (the detector's restart) lies near the true onset
            assert onset - 20 * 60 <= end - v.window_s <= end
    assert before < 3.0, f"the stationary part reached {before:.1f}"
    assert crossed is not None, "the ramp was never found"
    assert crossed - onset <= 20 * 60, f"found {(crossed - onset) / 60:.1f} min after the onset"
    assert psi_then < 0.2  # the window test alone would still be silent


def test_the_trend_state_survives_a_checkpoint():
    eng = _ramp_engine()
    end = max(t for t, _ in _feed_ramp(eng, 40 * 60.0, sd_per_hour=1.0, minutes=60))
    data = eng.checkpoint("m1")
    assert data is not None
    other = _ramp_engine()
    other.set_reference("m1", eng.reference("m1"))
    assert other.restore("m1", data)
    a = [v for v in eng.evaluate(end + 120).values if v.statistic == "rank_cusum"]
    b = [v for v in other.evaluate(end + 120).values if v.statistic == "rank_cusum"]
    assert a and a == b
    assert max(v.value for v in a) > 6.0


def test_values_held_between_bucket_reads_are_the_trackers_own():
    """The engine hands back an evaluation's rank CUSUM values until a bucket is read or the clock
    enters a new bucket: at every 15 s evaluation they equal the tracker's values made afresh. (A
    bucket settles 30 s into the next one here, so reads and new buckets fall on different
    evaluations.)"""
    eng = _ramp_engine(trend_settle_s=30.0)
    held = 0
    for end, snap in _feed_ramp(eng, 20 * 60.0, sd_per_hour=2.0, minutes=45):
        got = [v for v in snap.values if v.statistic == "rank_cusum"]
        tracker = eng._trends.get("m1")
        if tracker is None:
            continue
        profile = eng.reference("m1")
        assert profile is not None
        fresh = tracker.values("m1", end - 1e-6, eng.bucket_seconds, profile.id, profile.content_hash)
        assert got == fresh
        held += bool(got)
    assert held > 60 and max(v.value for v in got) > 3.0  # values there, and moving
