"""``monitor.api.compare`` (issue 13, part 6): the monitor's statistics on two frames.

Oracles: the PSI, KS and chi-square of a feature equal numpy/scipy on the same data binned with the
reference profile's own edges (an independent ``np.searchsorted`` binning); a slice regression is a
breach of ``quality.accuracy_gap`` on that slice only; the report's Markdown, PNGs and HTML hold
every feature.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy.stats import chi2_contingency

from monitor.api import compare

N = 5000


def frames(shift: float = 0.0, es_accuracy: float = 0.9, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)

    def frame(x_shift: float, es_acc: float) -> pl.DataFrame:
        lang = rng.choice(["en", "es"], N, p=[0.8, 0.2])
        acc = np.where(lang == "es", es_acc, 0.9)
        return pl.DataFrame({
            "x": rng.normal(x_shift, 1.0, N), "c": rng.choice(["a", "b", "c"], N, p=[0.5, 0.3, 0.2]),
            "lang": lang, "output": rng.choice(["yes", "no"], N), "confidence": rng.beta(8, 2, N),
            "was_correct": rng.random(N) < acc,
        })

    return frame(0.0, 0.9), frame(shift, es_accuracy)


def test_statistics_equal_numpy_and_scipy_on_the_profiles_bins() -> None:
    ref, cur = frames(shift=0.3)
    report = compare(ref, cur)
    spec = next(f for f in report.profile.features if f.name == "x")
    edges = np.asarray(spec.edges)

    def binned(x: np.ndarray) -> np.ndarray:
        idx = np.searchsorted(edges, x, side="right")
        idx[x == edges[-1]] = len(edges) - 1
        return np.bincount(idx, minlength=len(edges) + 1).astype(float)

    r, c = binned(ref["x"].to_numpy()), binned(cur["x"].to_numpy())
    p = (r / r.sum() + 1e-4) / (1 + 1e-4 * r.size)
    q = (c / c.sum() + 1e-4) / (1 + 1e-4 * c.size)
    assert math.isclose(report.value("input", "x", "psi"), float(np.sum((q - p) * np.log(q / p))), rel_tol=1e-9)
    ks = float(np.max(np.abs(np.cumsum(r) / r.sum() - np.cumsum(c) / c.sum())))
    assert math.isclose(report.value("input", "x", "ks"), ks, rel_tol=1e-12)
    cats = ["a", "b", "c"]
    rc = np.array([(ref["c"] == k).sum() for k in cats], float)
    cc = np.array([(cur["c"] == k).sum() for k in cats], float)
    stat = chi2_contingency(np.vstack([rc, cc]), correction=False)[0]
    assert math.isclose(report.value("input", "c", "chi2"), float(stat), rel_tol=1e-9)
    breached = {(b.feature, b.statistic) for b in report.breaches if b.slice == "all"}
    assert (("x", "psi") in breached) == (report.value("input", "x", "psi") > 0.2)  # input.psi's warning line


def test_a_slice_regression_is_a_breach_on_that_slice_only() -> None:
    ref, cur = frames(es_accuracy=0.75, seed=1)
    # the aggregate (0.8 x 0.9 + 0.2 x 0.75 = 0.87) stays above its bar; the slice falls 14 points below its own
    report = compare(ref, cur, protected_slices={"lang": ["es"]}, quality_bars={"all": 0.86, "lang=es": 0.89})
    gaps = {(b.slice, b.statistic) for b in report.breaches if b.signal == "quality"}
    assert ("lang=es", "accuracy_gap") in gaps and ("all", "accuracy_gap") not in gaps
    assert report.value("quality", "was_correct", "accuracy", "lang=es") == pytest.approx(
        cur.filter(pl.col("lang") == "es")["was_correct"].mean())
    same = compare(ref, ref, protected_slices={"lang": ["es"]})
    assert same.breaches == () and same.value("input", "x", "psi") == 0.0


def test_reports_as_markdown_pngs_and_html(tmp_path: Path) -> None:
    ref, cur = frames(shift=0.5)
    report = compare(ref, cur)
    md = report.write(tmp_path / "rep")
    text = md.read_text()
    assert "## Breaches" in text and "| all | input | x | psi |" in text
    for name in ("x", "c", "lang"):
        png = tmp_path / "rep" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"]({name}.png)" in text
    html = report.html()
    assert html.startswith("<!doctype html>") and html.count('src="data:image/png;base64,') == 3
    frame = report.to_frame()
    assert frame.height == len(report.values) and {"slice", "statistic", "p_value_adjusted"} <= set(frame.columns)


def test_pandas_frames_and_bad_input() -> None:
    pd = pytest.importorskip("pandas")  # not a dependency: when installed, its frames work too
    ref, cur = frames()
    a = compare(ref.to_pandas(), cur.to_pandas())
    assert a.value("input", "x", "psi") == compare(ref, cur).value("input", "x", "psi")
    assert isinstance(pd.DataFrame(), pd.DataFrame)


def test_refuses_empty_frames_and_other_objects() -> None:
    ref, _ = frames()
    with pytest.raises(ValueError, match="at least one row"):
        compare(ref, ref.clear())
    with pytest.raises(TypeError, match="polars or pandas"):
        compare(ref, [1, 2, 3])
