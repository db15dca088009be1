"""Each divergence against an independent scipy/numpy oracle on the same counts, plus properties."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency, entropy, ks_2samp, wasserstein_distance

from monitor.stats.bins import FeatureSpec
from monitor.stats.chi_square import chi_square
from monitor.stats.jensen_shannon import jensen_shannon
from monitor.stats.ks import ks_binned
from monitor.stats.psi import PSI_EPSILON, psi
from monitor.stats.wasserstein import wasserstein_binned

TOL = 1e-9


def pair(k_min: int = 2, k_max: int = 12):
    """Two count vectors over the same bins, each with a positive total."""
    return st.integers(k_min, k_max).flatmap(
        lambda k: st.tuples(
            st.lists(st.integers(0, 500), min_size=k, max_size=k).filter(lambda c: sum(c) > 0),
            st.lists(st.integers(0, 500), min_size=k, max_size=k).filter(lambda c: sum(c) > 0),
        )
    )


def _smooth(c: list[int]) -> np.ndarray:
    a = np.asarray(c, dtype=float)
    p = a / a.sum() + PSI_EPSILON
    return p / p.sum()


@given(pair())
def test_psi_equals_symmetric_kl_on_smoothed_proportions(counts):
    a, b = counts
    p, q = _smooth(a), _smooth(b)
    # PSI = KL(q||p) + KL(p||q) on the smoothed proportions
    assert psi(a, b) == pytest.approx(entropy(q, p) + entropy(p, q), abs=TOL)
    assert psi(a, b) >= 0.0
    assert psi(a, a) == pytest.approx(0.0, abs=TOL)


@given(pair())
def test_jensen_shannon_matches_scipy(counts):
    a, b = counts
    expected = jensenshannon(np.asarray(a, float) / sum(a), np.asarray(b, float) / sum(b), base=2)
    assert jensen_shannon(a, b) == pytest.approx(expected, abs=TOL)
    assert jensen_shannon(a, b) == pytest.approx(jensen_shannon(b, a), abs=TOL)
    assert 0.0 <= jensen_shannon(a, b) <= 1.0 + TOL
    assert jensen_shannon(a, a) == pytest.approx(0.0, abs=1e-7)


@given(pair())
@settings(max_examples=60)
def test_ks_matches_ks_2samp_on_binned_samples(counts):
    a, b = counts
    xa = np.repeat(np.arange(len(a)), a)
    xb = np.repeat(np.arange(len(b)), b)
    assert ks_binned(a, b) == pytest.approx(ks_2samp(xa, xb).statistic, abs=TOL)
    assert ks_binned(a, b) == pytest.approx(ks_binned(b, a), abs=TOL)
    assert ks_binned(a, a) == 0.0


@given(pair(), st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=12, max_size=12))
def test_wasserstein_matches_scipy_on_representative_points(counts, raw_points):
    a, b = counts
    x = np.sort(np.asarray(raw_points[: len(a)]))
    expected = wasserstein_distance(x, x, np.asarray(a, float), np.asarray(b, float))
    got = wasserstein_binned(x, a, b)
    assert got == pytest.approx(expected, abs=1e-9 * max(1.0, float(np.ptp(x))))
    assert got == pytest.approx(wasserstein_binned(x, b, a), abs=TOL)
    assert got >= 0.0
    assert wasserstein_binned(x, a, a) == pytest.approx(0.0, abs=TOL)


@given(pair())
def test_chi_square_matches_chi2_contingency(counts):
    a, b = counts
    table = np.asarray([a, b], dtype=float)
    kept = table[:, table.sum(axis=0) > 0]
    stat, p = chi_square(a, b)
    if kept.shape[1] < 2:
        assert (stat, p) == (0.0, 1.0)
        return
    res = chi2_contingency(kept, correction=False)
    assert stat == pytest.approx(res.statistic, abs=TOL, rel=1e-12)
    assert p == pytest.approx(res.pvalue, abs=TOL)


def test_divergences_reject_mismatched_bins():
    for fn in (psi, jensen_shannon, ks_binned):
        with pytest.raises(ValueError):
            fn([1, 2], [1, 2, 3])
    with pytest.raises(ValueError):
        jensen_shannon([0, 0], [1, 1])


@given(
    st.lists(st.floats(-50, 50, allow_nan=False), min_size=1, max_size=200),
    st.lists(st.floats(-50, 50, allow_nan=False), min_size=1, max_size=200),
    st.lists(st.floats(-50, 50, allow_nan=False), min_size=20, max_size=200),
)
@settings(max_examples=60)
def test_merge_then_compute_equals_compute_on_concatenated(part1, part2, reference):
    """Counts of two buckets added together give the same statistics as binning the concatenation."""
    spec = FeatureSpec.numeric("x", np.quantile(reference, np.linspace(0, 1, 11)))
    ref = np.bincount(spec.bin(pl.Series(reference)), minlength=spec.size)[:-1]
    c1 = np.bincount(spec.bin(pl.Series(part1)), minlength=spec.size)[:-1]
    c2 = np.bincount(spec.bin(pl.Series(part2)), minlength=spec.size)[:-1]
    cat = np.bincount(spec.bin(pl.Series(part1 + part2)), minlength=spec.size)[:-1]
    merged = c1 + c2
    assert np.array_equal(merged, cat)
    for fn in (psi, jensen_shannon, ks_binned):
        assert fn(ref, merged) == pytest.approx(fn(ref, cat), abs=TOL)
    assert wasserstein_binned(spec.points(), ref, merged) == pytest.approx(
        wasserstein_binned(spec.points(), ref, cat), abs=TOL
    )


def test_numeric_bins_match_numpy_histogram_inside_the_edges():
    rng = np.random.default_rng(3)
    ref = rng.normal(size=5000)
    cur = rng.normal(0.3, 1.2, size=5000)
    edges = np.quantile(ref, np.linspace(0, 1, 11))
    spec = FeatureSpec.numeric("x", edges)
    counts = np.bincount(spec.bin(pl.Series(cur)), minlength=spec.size)
    hist, _ = np.histogram(cur, bins=edges)  # numpy: last bin closed, values outside ignored
    assert np.array_equal(counts[1:-2], hist)
    assert counts[0] == np.sum(cur < edges[0])
    assert counts[-2] == np.sum(cur > edges[-1])


def test_categorical_bins_top_k_other_unseen_missing():
    spec = FeatureSpec.categorical("c", ["a", "b"], ["c"])
    idx = spec.bin(pl.Series(["a", "b", "c", "zz", None, "a"]))
    assert idx.tolist() == [0, 1, 2, 3, 4, 0]
    assert spec.unseen_index == 3 and spec.missing_index == 4
