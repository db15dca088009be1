"""Quantile sketch vs numpy.quantile within its relative accuracy; merging is addition."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.stats.sketch import SketchSpec


@pytest.mark.parametrize("alpha", [0.01, 0.02])
@pytest.mark.parametrize("dist", ["lognormal", "pareto", "normal"])
def test_quantiles_within_relative_accuracy(alpha, dist):
    rng = np.random.default_rng(7)
    if dist == "lognormal":
        x = rng.lognormal(5, 1.5, 100_000)
    elif dist == "pareto":
        x = (rng.pareto(1.5, 100_000) + 1) * 10
    else:
        x = rng.normal(0, 10, 100_000)
    spec = SketchSpec.from_values(x[:20_000], alpha)  # range from a reference sample, as in profiles
    counts = spec.counts(x)
    for q in (0.5, 0.95, 0.99):
        exact = np.quantile(x, q, method="lower")
        got = spec.quantile(counts, q)
        assert abs(got - exact) <= alpha * abs(exact) + 1e-12, (q, got, exact)


@given(
    st.lists(st.floats(0.1, 1e5, allow_nan=False), min_size=1, max_size=300),
    st.lists(st.floats(0.1, 1e5, allow_nan=False), min_size=1, max_size=300),
)
@settings(max_examples=50)
def test_merge_by_addition_equals_sketch_of_concatenation(a, b):
    # six decades fit in the default key budget at 1% accuracy (wider ranges clamp the low end)
    spec = SketchSpec.from_values(np.asarray(a + b), 0.01)
    merged = spec.counts(np.asarray(a)) + spec.counts(np.asarray(b))
    assert np.array_equal(merged, spec.counts(np.asarray(a + b)))
    both = np.asarray(a + b)
    for q in (0.5, 0.99):
        exact = np.quantile(both, q, method="lower")
        assert abs(spec.quantile(merged, q) - exact) <= 0.01 * exact + 1e-12


def test_fixed_memory_and_clamping():
    spec = SketchSpec.from_values(np.array([1.0, 1000.0]), 0.01)
    assert spec.counts(np.array([1e30, 1e-30, 0.0, np.nan])).sum() == 3  # NaN is not counted
    assert spec.size == spec.keys + 1 and not spec.negative
    assert SketchSpec.from_dict(spec.to_dict()) == spec
    assert pickle.loads(pickle.dumps(spec)) == spec


def test_negative_values_have_their_own_store():
    rng = np.random.default_rng(1)
    x = rng.normal(-100, 30, 10_000)
    spec = SketchSpec.from_values(x, 0.01)
    assert spec.negative
    for q in (0.01, 0.5, 0.99):
        exact = np.quantile(x, q, method="lower")
        assert abs(spec.quantile(spec.counts(x), q) - exact) <= 0.01 * abs(exact) + 1e-12


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.floats(0.001, 0.05), st.lists(st.floats(-1e4, 1e4, allow_nan=False), max_size=60)),
                min_size=1, max_size=5), st.integers(1, 3))
def test_segment_quantiles_equal_each_sketchs_own_quantiles(sketches, rows):
    """All sketches of all rows at once (issue 12) = :meth:`SketchSpec.quantiles` one at a time,
    which numpy's ``method="lower"`` checks above; empty sketches included."""
    from monitor.stats.sketch import segment_quantiles

    qs = (0.5, 0.95, 0.99)
    specs = [SketchSpec(acc, -40, 40, True) for acc, _ in sketches]
    rng = np.random.default_rng(len(sketches))
    counts = np.stack([np.concatenate([s.counts(np.asarray(v)[rng.random(len(v)) < 0.7]) for s, (_, v)
                                       in zip(specs, sketches, strict=True)]) for _ in range(rows)])
    sizes = np.array([s.size for s in specs])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    points = np.concatenate([s.representatives() for s in specs])
    n, cols = segment_quantiles(counts, starts, sizes, qs)
    for r in range(rows):
        for k, s in enumerate(specs):
            own = counts[r, starts[k]:starts[k] + sizes[k]]
            assert n[r, k] == own.sum()
            if own.sum():
                assert points[cols[r, k]].tolist() == s.quantiles(own, qs)
                assert all(starts[k] <= c < starts[k] + sizes[k] for c in cols[r, k])
