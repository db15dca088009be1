"""Where each counter of a model's window lives: a flat layout derived from its reference profile.

All histogram bins of all tracked features (plus ``output`` and ``confidence``) sit side by side in
one vector, so a whole batch is counted with a single ``np.bincount``; the same for the quantile
sketches of numeric features. Scalar sums (events, labels, scores) sit in a small separate vector;
scores and confidences are summed in fixed point (``FIXED_POINT`` units) so sums are exact and do not
depend on the order events arrive in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.stats.bins import FeatureSpec, NumericBinner, numeric_matrix, numeric_rows
from monitor.stats.columns import TOKENS_IN, EventColumns, raw_feature_columns
from monitor.stats.event_frame import EventFrame
from monitor.stats.sketch import SketchIndexer

FIXED_POINT = 1_000_000_000
SOURCES = ("human", "judge", "user", "system", "unknown")

EVENTS, LABELLED, CORRECT_N, CORRECT_SUM, SCORE_N, SCORE_SUM, SCORE_SQ, CONF_N, CONF_SUM = range(9)
SOURCE_BASE = 9
N_SCALARS = SOURCE_BASE + len(SOURCES)


def _sketch_size(spec: FeatureSpec) -> int:
    return spec.sketch.size if spec.sketch is not None else 0


def _starts(sizes: list[int]) -> NDArray[np.int64]:
    return np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64) if sizes else np.zeros(0, np.int64)


class _BinPlan:
    """What :meth:`Layout.bin_records` needs of a layout, derived once (not pickled: rebuilt on use)."""

    def __init__(self, layout: Layout) -> None:
        feats = layout.features
        self.numeric = [j for j, f in enumerate(feats) if f.kind == "numeric"]
        self.names = [feats[j].name for j in self.numeric]
        self.dict_rows = [i for i, f in enumerate(self.names) if f != TOKENS_IN]
        self.dict_names = [self.names[i] for i in self.dict_rows]
        self.tokens_rows = [i for i, f in enumerate(self.names) if f == TOKENS_IN] + [len(self.names)]
        self.other = [f for f in feats if f.kind != "numeric"]
        self.other_blocks = [j for j, f in enumerate(feats) if f.kind != "numeric"]
        nf = len(feats)
        self.conf_numeric = layout.confidence.kind == "numeric"
        self.hist_blocks = [*self.numeric, nf + 1] if self.conf_numeric else self.numeric
        self.binner = NumericBinner([layout.blocks[j] for j in self.hist_blocks])
        self.hist_offsets = layout.offsets[self.hist_blocks, None]
        self.sketch_rows = [self.numeric.index(j) for j in layout.sketched]
        self.sketcher = SketchIndexer([feats[j].sketch for j in layout.sketched])  # type: ignore[misc]
        self.hist_size = int(sum(b.size for b in layout.blocks))
        self.sketch_size = int(sum(_sketch_size(feats[i]) for i in layout.sketched))


@dataclass(frozen=True)
class Layout:
    """Tracked features, output and confidence specs, and the protected (key, value) slices."""

    features: tuple[FeatureSpec, ...]
    output: FeatureSpec
    confidence: FeatureSpec
    slices: tuple[tuple[str, str], ...]
    offsets: NDArray[np.int64] = field(init=False, compare=False, repr=False)
    sketched: tuple[int, ...] = field(init=False, compare=False, repr=False)
    sketch_offsets: NDArray[np.int64] = field(init=False, compare=False, repr=False)
    _blocks: tuple[FeatureSpec, ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_blocks", (*self.features, self.output, self.confidence))
        object.__setattr__(self, "offsets", _starts([b.size for b in self.blocks]))
        sketched = tuple(i for i, f in enumerate(self.features) if f.sketch is not None)
        object.__setattr__(self, "sketched", sketched)
        sizes = [_sketch_size(self.features[i]) for i in sketched]
        object.__setattr__(self, "sketch_offsets", _starts(sizes))

    @property
    def blocks(self) -> tuple[FeatureSpec, ...]:
        """Histogram blocks in order: tracked features, then output, then confidence."""
        try:
            return self._blocks
        except AttributeError:  # a layout unpickled from a checkpoint written before it was kept
            object.__setattr__(self, "_blocks", (*self.features, self.output, self.confidence))
            return self._blocks

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_plan", None)  # derived: rebuilt on first use
        return state

    @property
    def _bin_plan(self) -> _BinPlan:
        plan: _BinPlan | None = self.__dict__.get("_plan")
        if plan is None:
            plan = _BinPlan(self)
            object.__setattr__(self, "_plan", plan)
        return plan

    @property
    def hist_size(self) -> int:
        return self._bin_plan.hist_size

    @property
    def sketch_size(self) -> int:
        return self._bin_plan.sketch_size

    @property
    def n_slices(self) -> int:
        return 1 + len(self.slices)

    def block(self, j: int) -> slice:
        off = int(self.offsets[j])
        return slice(off, off + self.blocks[j].size)

    def sketch_block(self, k: int) -> slice:
        off = int(self.sketch_offsets[k])
        return slice(off, off + _sketch_size(self.features[self.sketched[k]]))

    def _numeric_matrix(self, rec: EventColumns, plan: _BinPlan) -> NDArray[np.float64]:
        """Rows: the numeric features in order (``tokens_in`` from the event field), then confidence."""
        x = np.empty((len(plan.names) + 1, len(rec)), dtype=np.float64)
        x[plan.dict_rows] = numeric_rows(rec.features, plan.dict_names)
        x[plan.tokens_rows] = numeric_matrix([rec.tokens_in] * (len(plan.tokens_rows) - 1) + [rec.confidence], len(rec))
        return x

    def bin_records(
        self, rec: EventColumns | EventFrame
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
        """Flat histogram indices ``(n, blocks)``, sketch indices ``(n, sketched)`` (-1 = none) and the
        per-event scalar contributions ``(n, N_SCALARS)``.

        All numeric blocks (numeric features, then confidence) are converted, binned and sketched as
        one ``(features, n)`` matrix; categorical and boolean features one column at a time. An
        :class:`EventFrame` is read column by column, never per event."""
        n = len(rec)
        plan = self._bin_plan
        if isinstance(rec, EventFrame):
            x = rec.numeric(plan.names)
            categorical = rec.bins_of(plan.other)
        else:
            raw = raw_feature_columns(rec.features, plan.other, rec.tokens_in)
            x = self._numeric_matrix(rec, plan)
            categorical = {f.name: f.bin(raw[f.name]) for f in plan.other}
        nf = len(self.features)
        hist = np.empty((n, len(self.blocks)), dtype=np.int64)
        if plan.conf_numeric:
            hist[:, plan.hist_blocks] = (plan.binner.bins(x) + plan.hist_offsets).T
        else:
            hist[:, plan.hist_blocks] = (plan.binner.bins(x[:-1]) + plan.hist_offsets).T
            conf = rec.frame["confidence"] if isinstance(rec, EventFrame) else rec.confidence
            hist[:, nf + 1] = self.confidence.bin(conf) + self.offsets[nf + 1]
        for j, spec in zip(plan.other_blocks, plan.other, strict=True):
            hist[:, j] = categorical[spec.name] + self.offsets[j]
        sketch = np.empty((n, len(self.sketched)), dtype=np.int64)
        if self.sketched:
            idx = plan.sketcher.indices(x[plan.sketch_rows])
            sketch[:] = np.where(idx >= 0, idx + self.sketch_offsets[:, None], -1).T
        out = rec.bins(self.output, "output") if isinstance(rec, EventFrame) else self.output.bin(rec.outputs)
        hist[:, nf] = out + self.offsets[nf]
        c = x[-1]
        scal = np.zeros((n, N_SCALARS), dtype=np.int64)
        scal[:, EVENTS] = 1
        ok = np.isfinite(c)
        scal[:, CONF_N] = ok
        scal[ok, CONF_SUM] = np.rint(c[ok] * FIXED_POINT).astype(np.int64)
        return hist, sketch, scal


def source_index(source: str | None) -> int:
    return SOURCES.index(source) if source in SOURCES else SOURCES.index("unknown")
