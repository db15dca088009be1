"""Wilson interval, mean bound and p-value corrections against scipy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import binomtest, false_discovery_control, norm

from monitor.stats.mean_bound import mean_interval
from monitor.stats.multiple_testing import adjust_p_values
from monitor.stats.wilson import wilson_interval


@given(st.integers(1, 5000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
       st.sampled_from([0.9, 0.95, 0.99]))
def test_wilson_matches_binomtest(kn, confidence):
    k, n = kn
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    lo, hi = wilson_interval(k, n, confidence)
    assert lo == pytest.approx(ci.low, abs=1e-9)
    assert hi == pytest.approx(ci.high, abs=1e-9)


@given(st.lists(st.floats(0, 1, allow_nan=False), min_size=2, max_size=300), st.sampled_from([0.95, 0.99]))
def test_mean_interval_matches_normal_interval(xs, confidence):
    x = np.asarray(xs)
    mean, lo, hi = mean_interval(x.size, float(x.sum()), float((x * x).sum()), confidence)
    sem = x.std(ddof=1) / np.sqrt(x.size)
    assert mean == pytest.approx(x.mean(), abs=1e-9)
    if sem > 1e-6:
        elo, ehi = norm.interval(confidence, loc=x.mean(), scale=sem)
        assert lo == pytest.approx(elo, abs=1e-7)
        assert hi == pytest.approx(ehi, abs=1e-7)


@given(st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=100))
def test_bh_matches_scipy_false_discovery_control(ps):
    assert adjust_p_values(ps, "bh") == pytest.approx(list(false_discovery_control(ps, method="bh")), abs=1e-12)


@given(st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=100))
def test_bonferroni_is_capped_product(ps):
    assert adjust_p_values(ps, "bonferroni") == pytest.approx([min(1.0, p * len(ps)) for p in ps])


def test_unknown_correction_is_rejected():
    with pytest.raises(ValueError):
        adjust_p_values([0.1], "holm")  # type: ignore[arg-type]
