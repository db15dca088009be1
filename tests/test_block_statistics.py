"""``block_statistics``: every block of every row equals the per-block functions and scipy.

Oracles, on the same counts (hypothesis draws block sizes, kinds, points and counts, zeros included):
scipy's ``chi2_contingency`` (no continuity correction) for the chi-square statistic and p-value on
the bins with a count, ``scipy.spatial.distance.jensenshannon`` (base 2), ``scipy.stats.wasserstein_distance``
on the bin points weighted by the counts, a plain numpy ``max |F_ref - F_cur|`` for KS and the
PSI formula on smoothed proportions; plus the per-block functions the signal builder used before.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency, wasserstein_distance

from monitor.stats.block_statistics import BlockGeometry, block_statistics
from monitor.stats.chi_square import chi_square
from monitor.stats.jensen_shannon import jensen_shannon
from monitor.stats.ks import ks_binned
from monitor.stats.psi import PSI_EPSILON, psi
from monitor.stats.wasserstein import wasserstein_binned


@st.composite
def problems(draw):
    n_blocks = draw(st.integers(1, 5))
    sizes, numeric, points, unseen = [], [], [], []
    for _ in range(n_blocks):
        k = draw(st.integers(1, 8))  # value bins
        sizes.append(k + 1)
        num = draw(st.booleans())
        numeric.append(num)
        points.append(np.cumsum(draw(st.lists(st.floats(0, 5), min_size=k, max_size=k))) if num else None)
        unseen.append(draw(st.integers(0, k - 1)) if not num and draw(st.booleans()) else -1)
    rows = draw(st.integers(1, 4))
    width = sum(sizes)
    cell = st.integers(0, 40)
    ref = np.array(draw(st.lists(st.lists(cell, min_size=width, max_size=width), min_size=rows, max_size=rows)))
    cur = np.array(draw(st.lists(st.lists(cell, min_size=width, max_size=width), min_size=rows, max_size=rows)))
    return BlockGeometry.of(sizes, numeric, points, unseen), points, ref, cur


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


@settings(max_examples=300, deadline=None)
@given(problems())
def test_every_block_equals_scipy_and_the_per_block_functions(problem) -> None:
    geo, points, ref, cur = problem
    s = block_statistics(ref, cur, geo)
    for r in range(ref.shape[0]):
        for b, (start, size) in enumerate(zip(geo.starts.tolist(), geo.sizes.tolist(), strict=True)):
            rv, cv = ref[r, start:start + size - 1], cur[r, start:start + size - 1]
            total = cur[r, start:start + size].sum()
            assert s.total[r, b] == total and s.present[r, b] == cv.sum()
            if total:
                assert close(s.missing_rate[r, b], cur[r, start + size - 1] / total)
            else:
                assert math.isnan(s.missing_rate[r, b])
            if rv.sum() == 0 or cv.sum() == 0:
                assert not s.tested[r, b] and math.isnan(s.psi[r, b]) and math.isnan(s.p_value[r, b])
                continue
            assert s.tested[r, b]
            # PSI: the formula on smoothed proportions, and the per-block function
            p = (rv / rv.sum() + PSI_EPSILON) / (1 + PSI_EPSILON * rv.size)
            q = (cv / cv.sum() + PSI_EPSILON) / (1 + PSI_EPSILON * cv.size)
            assert close(s.psi[r, b], float(np.sum((q - p) * np.log(q / p)))) and close(s.psi[r, b], psi(rv, cv))
            assert math.isclose(s.js[r, b], float(jensenshannon(rv, cv, base=2)), rel_tol=1e-7, abs_tol=1e-7)
            assert close(s.js[r, b], jensen_shannon(rv, cv))
            used = (rv + cv) > 0
            if used.sum() >= 2:
                stat, pval, _, _ = chi2_contingency(np.vstack([rv[used], cv[used]]), correction=False)
                assert close(s.p_value[r, b], float(pval))
                if not geo.numeric[b]:
                    assert close(s.chi2[r, b], float(stat))
            else:
                assert s.p_value[r, b] == 1.0
            stat_, p_ = chi_square(rv, cv)
            assert close(s.p_value[r, b], p_)
            if geo.numeric[b]:
                f_ref, f_cur = np.cumsum(rv) / rv.sum(), np.cumsum(cv) / cv.sum()
                assert s.ks[r, b] == float(np.max(np.abs(f_ref - f_cur))) == ks_binned(rv, cv)
                x = points[b]
                want = float(wasserstein_distance(x, x, rv, cv))
                assert math.isclose(s.wasserstein[r, b], want, rel_tol=1e-9, abs_tol=1e-9)
                assert close(s.wasserstein[r, b], wasserstein_binned(x, rv, cv))
                assert math.isnan(s.chi2[r, b])
            else:
                assert close(s.chi2[r, b], stat_) and math.isnan(s.ks[r, b]) and math.isnan(s.wasserstein[r, b])
            if geo.unseen[b] >= 0:
                assert close(s.unseen_rate[r, b], cv[geo.unseen[b]] / cv.sum())
            else:
                assert math.isnan(s.unseen_rate[r, b])


def test_bad_shapes_and_geometries_are_refused() -> None:
    geo = BlockGeometry.of([3], [True], [[0.0, 1.0]], [-1])
    with pytest.raises(ValueError, match="rows"):
        block_statistics(np.ones((1, 3)), np.ones((1, 4)), geo)
    with pytest.raises(ValueError, match="missing bin"):
        BlockGeometry.of([1], [False], [None], [-1])
    with pytest.raises(ValueError, match="points"):
        BlockGeometry.of([3], [True], [[0.0, 1.0, 2.0]], [-1])
    with pytest.raises(ValueError, match="ascending"):
        BlockGeometry.of([3], [True], [[1.0, 0.0]], [-1])
