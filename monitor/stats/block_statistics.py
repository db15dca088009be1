"""Every distribution statistic of every histogram block of many rows, in a few array passes.

A model's window holds, per slice, one flat vector of histogram counts: one block per tracked
feature, then ``output`` and ``confidence`` (:class:`~monitor.stats.layout.Layout`); each block is
its value bins followed by one missing bin. :func:`block_statistics` compares a matrix of such rows
(one per slice) with a matrix of reference rows and returns, per (row, block), what
:mod:`monitor.stats.psi`, :mod:`~monitor.stats.jensen_shannon`, :mod:`~monitor.stats.ks`,
:mod:`~monitor.stats.wasserstein` and :mod:`~monitor.stats.chi_square` return for that block's value
bins alone: the same definitions, computed with segment sums (``np.add.reduceat``) over the whole
matrix instead of one call per (slice, feature). Cumulative counts are exact integers in float64,
so ``ks`` equals the per-block function bit for bit; the sums of the other statistics differ from
the per-block ones only in summation order (relative 1e-15). The tests check every statistic
against those functions and against scipy.

A statistic is NaN where the per-block function has no value (no present count on either side).

>>> import numpy as np
>>> geo = BlockGeometry.of(sizes=[3, 2], numeric=[True, False], points=[[0.0, 1.0], None], unseen=[-1, -1])
>>> ref = np.array([[10.0, 10.0, 0.0, 5.0, 1.0]])      # block 0: bins 10, 10 + missing 0
>>> cur = np.array([[15.0, 5.0, 5.0, 0.0, 0.0]])       # block 1: nothing present
>>> s = block_statistics(ref, cur, geo)
>>> float(s.missing_rate[0, 0]), float(s.ks[0, 0]), bool(np.isnan(s.psi[0, 1]))
(0.2, 0.25, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import chdtrc

from monitor.stats.psi import PSI_EPSILON

F64 = NDArray[np.float64]


@dataclass(frozen=True)
class BlockGeometry:
    """Where the blocks of a flat row are: each block's start and size (value bins + 1 missing bin),
    which are numeric (``ks`` and ``wasserstein``) or not (``chi2``), the numeric blocks' bin points
    (for ``wasserstein``) and the unseen-category bin of each block (-1: none)."""

    starts: NDArray[np.int64]
    sizes: NDArray[np.int64]
    numeric: NDArray[np.bool_]
    unseen: NDArray[np.int64]
    seg: NDArray[np.int64]
    """Block index of every column."""
    value: NDArray[np.bool_]
    """True on value bins, False on each block's missing bin."""
    missing: NDArray[np.int64]
    """Column of each block's missing bin."""
    step: F64
    """``points[i + 1] - points[i]`` at value bin ``i`` of a numeric block (0 at its last value bin and elsewhere)."""

    @classmethod
    def of(
        cls,
        sizes: Sequence[int],
        numeric: Sequence[bool],
        points: Sequence[ArrayLike | None],
        unseen: Sequence[int],
    ) -> BlockGeometry:
        sz = np.asarray(sizes, dtype=np.int64)
        if sz.size == 0 or np.any(sz < 2):
            raise ValueError("every block needs at least one value bin and its missing bin")
        starts = np.concatenate([[0], np.cumsum(sz)[:-1]]).astype(np.int64)
        width = int(sz.sum())
        seg = np.repeat(np.arange(sz.size), sz)
        missing = starts + sz - 1
        value = np.ones(width, dtype=bool)
        value[missing] = False
        step = np.zeros(width, dtype=np.float64)
        for b, pts in enumerate(points):
            if pts is None:
                continue
            x = np.asarray(pts, dtype=np.float64)
            if x.size != sz[b] - 1:
                raise ValueError(f"block {b}: {x.size} points for {sz[b] - 1} value bins")
            if np.any(np.diff(x) < 0):
                raise ValueError("points must be ascending")
            step[starts[b] : starts[b] + x.size - 1] = np.diff(x)
        return cls(starts, sz, np.asarray(numeric, dtype=bool), np.asarray(unseen, dtype=np.int64), seg, value,
                   missing, step)

    @property
    def width(self) -> int:
        return int(self.sizes.sum())


@dataclass(frozen=True)
class BlockStatistics:
    """Per (row, block): counts and every distribution statistic (NaN where undefined)."""

    total: F64
    present: F64
    ref_total: F64
    ref_present: F64
    missing_rate: F64
    ref_missing_rate: F64
    psi: F64
    js: F64
    ks: F64
    wasserstein: F64
    chi2: F64
    p_value: F64
    unseen_rate: F64

    @property
    def tested(self) -> NDArray[np.bool_]:
        """Where both sides have present counts (the per-block functions' precondition)."""
        return (self.present > 0) & (self.ref_present > 0)


def _sums(x: F64, geo: BlockGeometry) -> F64:
    return np.add.reduceat(x, geo.starts, axis=1)


def block_statistics(reference: ArrayLike, current: ArrayLike, geo: BlockGeometry) -> BlockStatistics:
    """Statistics of every block of ``current`` rows against the same rows of ``reference``."""
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    if ref.shape != cur.shape or ref.ndim != 2 or ref.shape[1] != geo.width:
        raise ValueError(f"reference and current must both be (rows, {geo.width})")
    val = geo.value
    refv, curv = np.where(val, ref, 0.0), np.where(val, cur, 0.0)
    total, ref_total = _sums(cur, geo), _sums(ref, geo)
    present, ref_present = _sums(curv, geo), _sums(refv, geo)
    with np.errstate(divide="ignore", invalid="ignore"):
        missing_rate = np.where(total > 0, cur[:, geo.missing] / total, np.nan)
        ref_missing_rate = np.where(ref_total > 0, ref[:, geo.missing] / ref_total, 0.0)
        tested = (present > 0) & (ref_present > 0)
        rp, cp = ref_present[:, geo.seg], present[:, geo.seg]  # per column, its block's present total
        # PSI on smoothed proportions of the value bins
        k = (geo.sizes - 1)[geo.seg].astype(np.float64)
        p = (refv / rp + PSI_EPSILON) / (1.0 + PSI_EPSILON * k)
        q = (curv / cp + PSI_EPSILON) / (1.0 + PSI_EPSILON * k)
        psi = _sums(np.where(val, (q - p) * np.log(q / p), 0.0), geo)
        # Jensen-Shannon distance (base 2) of the plain proportions
        pp, qq = refv / rp, curv / cp
        m = (pp + qq) / 2.0
        rel = np.where(pp > 0, pp * np.log(pp / m), 0.0) + np.where(qq > 0, qq * np.log(qq / m), 0.0)
        js = np.sqrt(np.maximum(_sums(np.where(val, rel, 0.0), geo) / 2.0 / np.log(2.0), 0.0))
        # cumulative distributions within each block: exact integer counts, then one division
        cr = np.cumsum(refv, axis=1)
        cc = np.cumsum(curv, axis=1)
        before = geo.starts - 1
        base_r = np.where(before >= 0, cr[:, np.maximum(before, 0)], 0.0)
        base_c = np.where(before >= 0, cc[:, np.maximum(before, 0)], 0.0)
        gap = np.abs((cr - base_r[:, geo.seg]) / rp - (cc - base_c[:, geo.seg]) / cp)
        gap = np.where(val, gap, 0.0)
        ks = np.maximum.reduceat(gap, geo.starts, axis=1)
        wasserstein = _sums(gap * geo.step, geo)
        # chi-square homogeneity test on the value bins with a count on either side
        col = refv + curv
        n = (rp + cp)
        used = val & (col > 0)
        er, ec = rp * col / n, cp * col / n
        terms = np.where(used, (refv - er) ** 2 / er + (curv - ec) ** 2 / ec, 0.0)
        chi2 = _sums(terms, geo)
        dof = _sums(used.astype(np.float64), geo) - 1.0
        chi2 = np.where(dof >= 1, chi2, 0.0)
        p_value = np.where(dof >= 1, chdtrc(np.maximum(dof, 1.0), chi2), 1.0)
        has_unseen = geo.unseen >= 0
        unseen_rate = np.full(total.shape, np.nan)
        if has_unseen.any():
            cols = geo.starts[has_unseen] + geo.unseen[has_unseen]
            unseen_rate[:, has_unseen] = cur[:, cols] / present[:, has_unseen]
    nan = np.nan
    return BlockStatistics(
        total, present, ref_total, ref_present, missing_rate, ref_missing_rate,
        np.where(tested, psi, nan), np.where(tested, js, nan), np.where(tested & geo.numeric, ks, nan),
        np.where(tested & geo.numeric, wasserstein, nan), np.where(tested & ~geo.numeric, chi2, nan),
        np.where(tested, p_value, nan), np.where(tested & has_unseen, unseen_rate, nan),
    )
