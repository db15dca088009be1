"""The statistics without the monitor: compare a reference frame with a current one, from a batch
job or a notebook, and get the same statistics (and rule verdicts) the monitor exports.

Frames are polars or pandas, one row per prediction: a column per input feature (or one
``input_features`` column of mappings), and optionally ``output``, ``confidence``, ``was_correct``
and ``score`` (labels: the quality statistics), ``tokens_in``, ``slice`` (a mapping of slice
attributes; a protected key is also looked up among the features). The reference's bins, sketches
and counts are built exactly as for a stored reference profile (:func:`build_profile`), the current
rows go through the monitor's :class:`~monitor.drift.DriftEngine` as one window, and each statistic
that has an alert rule gets the rule's verdict (threshold, sample minimum, adjusted p-value) with no
hold: a batch comparison is one look.

>>> import numpy as np, polars as pl
>>> rng = np.random.default_rng(0)
>>> ref = pl.DataFrame({"x": rng.normal(0, 1, 3000), "lang": rng.choice(["en", "es"], 3000)})
>>> cur = pl.DataFrame({"x": rng.normal(0.5, 1, 3000), "lang": rng.choice(["en", "es"], 3000)})
>>> report = compare(ref, cur, protected_slices={"lang": ["es"]})
>>> psi = report.value("input", "x", "psi")
>>> bool(psi > 0.2), [(b.feature, b.statistic, b.severity) for b in report.breaches if b.slice == "all"]
(True, [('x', 'psi', 'warning')])
"""

from __future__ import annotations

import base64
import io
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from monitor.alerts.rules import DEFAULT_RULES, Rule
from monitor.drift import DriftEngine
from monitor.records import QualityBar
from monitor.snapshot import AGGREGATE, SignalValue
from monitor.stats.profile import ReferenceProfile
from monitor.stats.profile_builder import RESERVED, build_profile

_AT = 60.0  # the current rows' time: one bucket, one window


@dataclass(frozen=True)
class Breach:
    """A statistic past its rule's threshold, with enough samples and (where it has one) a
    significant adjusted p-value."""

    slice: str
    signal: str
    feature: str
    statistic: str
    value: float
    severity: str
    threshold: float


@dataclass(frozen=True)
class Report:
    """One comparison: every statistic (:attr:`values`, as the monitor exports them), the rules'
    :attr:`breaches`, and the reference profile it was made against."""

    values: tuple[SignalValue, ...]
    breaches: tuple[Breach, ...]
    profile: ReferenceProfile
    reference_counts: Mapping[str, list[int]] = field(repr=False)
    current_counts: Mapping[str, list[int]] = field(repr=False)

    def value(self, signal: str, feature: str, statistic: str, slice: str = AGGREGATE) -> float:
        """One statistic's value (``KeyError`` when the comparison has none)."""
        for v in self.values:
            if (v.signal, v.feature, v.statistic, v.slice) == (signal, feature, statistic, slice):
                return v.value
        raise KeyError(f"{signal}/{feature}/{statistic} on {slice}")

    def to_frame(self) -> pl.DataFrame:
        """The statistics as a polars frame (one row per slice, signal, feature and statistic)."""
        return pl.DataFrame(
            [{"slice": v.slice, "signal": v.signal, "feature": v.feature, "statistic": v.statistic,
              "value": v.value, "sample_count": v.sample_count, "sufficient": v.sufficient,
              "p_value": v.p_value, "p_value_adjusted": v.p_value_adjusted, "baseline": v.baseline}
             for v in self.values],
            schema={"slice": pl.String, "signal": pl.String, "feature": pl.String, "statistic": pl.String,
                    "value": pl.Float64, "sample_count": pl.Int64, "sufficient": pl.Boolean,
                    "p_value": pl.Float64, "p_value_adjusted": pl.Float64, "baseline": pl.Float64},
        )

    def to_markdown(self, plots: Mapping[str, str] | None = None) -> str:
        """A Markdown report: the breaches, then per input feature its distribution statistics on the
        aggregate (and a plot, ``plots``: feature -> image path or data URI)."""
        lines = [f"# Drift report against reference {self.profile.id}", ""]
        if self.breaches:
            lines += ["## Breaches", "", "| slice | signal | feature | statistic | value | severity | threshold |",
                      "|---|---|---|---|---|---|---|"]
            lines += [f"| {b.slice} | {b.signal} | {b.feature} | {b.statistic} | {b.value:.4g} | {b.severity} | "
                      f"{b.threshold:g} |" for b in self.breaches]
        else:
            lines += ["No statistic breaches its rule."]
        stats = ("psi", "js", "ks", "wasserstein", "chi2", "missing_rate", "unseen_rate")
        lines += ["", "## Input features (all traffic)", "",
                  "| feature | " + " | ".join(stats) + " | adjusted p |", "|---|" + "---|" * (len(stats) + 1)]
        by_feature: dict[str, dict[str, SignalValue]] = {}
        for v in self.values:
            if v.signal == "input" and v.slice == AGGREGATE:
                by_feature.setdefault(v.feature, {})[v.statistic] = v
        for name, vs in sorted(by_feature.items()):
            cells = [f"{vs[s].value:.4g}" if s in vs else "" for s in stats]
            adj = next((v.p_value_adjusted for v in vs.values() if v.p_value_adjusted is not None), None)
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {'' if adj is None else f'{adj:.3g}'} |")
        for name, src in sorted((plots or {}).items()):
            lines += ["", f"### {name}", "", f"![{name}: reference and current distributions]({src})"]
        return "\n".join(lines) + "\n"

    def write(self, directory: str | Path, *, plots: bool = True) -> Path:
        """``report.md`` in ``directory`` with a PNG per input feature beside it (reference and
        current bin shares; needs matplotlib, the ``plot`` extra). Returns the Markdown's path."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        images: dict[str, str] = {}
        if plots:
            for name, png in self.plots().items():
                path = out / f"{_safe(name)}.png"
                path.write_bytes(png)
                images[name] = path.name
        md = out / "report.md"
        md.write_text(self.to_markdown(images))
        return md

    def html(self) -> str:
        """The report as one self-contained HTML page (plots inlined)."""
        images = {n: "data:image/png;base64," + base64.b64encode(p).decode() for n, p in self.plots().items()}
        body = []
        for line in self.to_markdown(images).splitlines():
            if line.startswith("# "):
                body.append(f"<h1>{_esc(line[2:])}</h1>")
            elif line.startswith("## "):
                body.append(f"<h2>{_esc(line[3:])}</h2>")
            elif line.startswith("### "):
                body.append(f"<h3>{_esc(line[4:])}</h3>")
            elif line.startswith("!["):
                alt, src = line[2:].split("](", 1)
                body.append(f'<img alt="{_esc(alt)}" src="{src[:-1]}">')
            elif line.startswith("|") and not line.startswith("|---"):
                cells = "".join(f"<td>{_esc(c.strip())}</td>" for c in line.strip("|").split("|"))
                body.append(f"<tr>{cells}</tr>")
            elif line:
                body.append(f"<p>{_esc(line)}</p>")
        return "<!doctype html><meta charset=utf-8><title>Slicewatch drift report</title>" + "\n".join(
            ("<table>" + b) if b.startswith("<tr>") and (i == 0 or not body[i - 1].startswith("<tr>")) else b
            for i, b in enumerate(body))

    def plots(self) -> dict[str, bytes]:
        """One PNG per input feature: the reference's and the current bin shares side by side."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        out = {}
        for spec in self.profile.features:
            ref, cur = self.reference_counts.get(spec.name), self.current_counts.get(spec.name)
            if ref is None or cur is None or sum(cur) == 0:
                continue
            labels = _bin_labels(spec)
            r, c = np.asarray(ref, float), np.asarray(cur, float)
            x = np.arange(len(labels))
            fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * len(labels)), 3.2))
            ax.bar(x - 0.2, r / max(r.sum(), 1), 0.4, label="reference")
            ax.bar(x + 0.2, c / max(c.sum(), 1), 0.4, label="current")
            ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=7)
            ax.set_ylabel("share")
            ax.set_title(spec.name)
            ax.legend()
            fig.tight_layout()
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=80)
            plt.close(fig)
            out[spec.name] = buf.getvalue()
        return out


def compare(
    reference: Any,
    current: Any,
    *,
    protected_slices: Mapping[str, Sequence[str]] | None = None,
    features: Sequence[str] | None = None,
    quality_bars: Mapping[str, float] | None = None,
    rules: Mapping[str, Rule] | None = None,
    alpha: float = 0.01,
    min_samples: int = 200,
    numeric_bins: int = 10,
    top_k_categories: int = 20,
    model_id: str = "model",
) -> Report:
    """Compare ``current`` rows with ``reference`` rows (polars or pandas frames).

    ``protected_slices``: ``{"language": ["es", "ja"]}``; ``quality_bars``: the release bar per
    slice label (``{"all": 0.87, "language=es": 0.85}``); ``rules``: the alert rules (default: the
    monitor's). Everything else as in the monitor's ``stats`` settings."""
    ref, cur = _polars(reference), _polars(current)
    if ref.height == 0 or cur.height == 0:
        raise ValueError("both frames need at least one row")
    slices = {k: list(v) for k, v in (protected_slices or {}).items()}
    profile = build_profile(ref, model_id, features=list(features) if features else None,
                            numeric_bins=numeric_bins, top_k_categories=top_k_categories, protected_slices=slices)
    bars = {model_id: {label: QualityBar(accuracy=float(acc)) for label, acc in (quality_bars or {}).items()}}
    engine = DriftEngine(bucket_seconds=_AT, window_buckets=1, min_samples=min_samples, alpha=alpha,
                         protected_slices=slices, quality_bars=bars, auto_reference_events=None,
                         numeric_bins=numeric_bins, top_k_categories=top_k_categories)
    engine.set_reference(model_id, profile)
    engine.replay(_rows(cur, model_id), _AT)
    snapshot = engine.evaluate(_AT)
    values = tuple(v for v in snapshot.values if v.window_s in (None, _AT))
    chosen = DEFAULT_RULES if rules is None else rules
    breaches = []
    for v in values:
        rule = chosen.get(f"{v.signal}.{v.statistic}")
        severity = rule.verdict(v, alpha) if rule is not None else None
        if rule is not None and severity is not None:
            breaches.append(Breach(v.slice, v.signal, v.feature, v.statistic, v.value, severity,
                                   rule.threshold(severity)))
    window = engine.window_totals(model_id, _AT)
    assert window is not None
    layout_features = [f.name for f in profile.features]
    current_counts = {}
    offsets = np.concatenate([[0], np.cumsum([f.size for f in profile.features])])
    for i, name in enumerate(layout_features):
        current_counts[name] = window.hist[0][offsets[i]:offsets[i + 1]].tolist()
    reference_counts = {name: list(profile.aggregate.features[name]) for name in layout_features
                        if name in profile.aggregate.features}
    return Report(values, tuple(sorted(breaches, key=lambda b: (b.slice, b.signal, b.feature, b.statistic))),
                  profile, reference_counts, current_counts)


def _polars(frame: Any) -> pl.DataFrame:
    if isinstance(frame, pl.DataFrame):
        return frame
    try:
        return pl.from_pandas(frame)
    except (TypeError, ValueError, ImportError) as e:
        raise TypeError(f"expected a polars or pandas DataFrame, got {type(frame).__name__}") from e


def _rows(frame: pl.DataFrame, model_id: str) -> list[dict[str, Any]]:
    """The current rows as the store would return them: all at one time, labels joined."""
    n = frame.height
    if "input_features" in frame.columns:
        feats = [d or {} for d in frame.get_column("input_features").to_list()]
    else:
        cols = [c for c in frame.columns if c not in RESERVED and c not in ("was_correct", "score", "label_source")]
        feats = frame.select(cols).to_dicts() if cols else [{} for _ in range(n)]

    def col(name: str, default: Any = None) -> list[Any]:
        return frame.get_column(name).to_list() if name in frame.columns else [default] * n

    out = []
    for i, (f, o, c, t, s, wc, sc) in enumerate(zip(feats, col("output", ""), col("confidence"), col("tokens_in"),
                                                     col("slice"), col("was_correct"), col("score"), strict=True)):
        out.append({"request_id": f"row-{i}", "model_id": model_id, "served_at": _AT, "input_features": f,
                    "output": "" if o is None else str(o), "confidence": c, "tokens_in": t, "slice": s or {},
                    "was_correct": wc, "score": sc, "label_source": None, "label_observed_at": _AT})
    return out


def _bin_labels(spec: Any) -> list[str]:
    if spec.kind == "numeric":
        e = list(spec.edges)
        return [f"<{e[0]:.3g}"] + [f"{a:.3g}-{b:.3g}" for a, b in itertools.pairwise(e)] + \
            [f">{e[-1]:.3g}", "missing"]
    if spec.kind == "categorical":
        return [*spec.categories, "other", "unseen", "missing"]
    return ["false", "true", "missing"]


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)[:80] or "feature"


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
