"""Where each counter of a model's window lives: a flat layout derived from its reference profile.

All histogram bins of all tracked features (plus ``output`` and ``confidence``) sit side by side in
one vector, so a whole batch is counted with a single ``np.bincount``; the same for the quantile
sketches of numeric features. Scalar sums (events, labels, scores) sit in a small separate vector;
scores and confidences are summed in fixed point (``FIXED_POINT`` units) so sums are exact and do not
depend on the order events arrive in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from monitor.stats.bins import FeatureSpec, numeric_bins, numeric_matrix, numeric_rows
from monitor.stats.columns import TOKENS_IN, EventColumns, raw_feature_columns
from monitor.stats.event_frame import EventFrame
from monitor.stats.sketch import sketch_indices

FIXED_POINT = 1_000_000_000
SOURCES = ("human", "judge", "user", "system", "unknown")

EVENTS, LABELLED, CORRECT_N, CORRECT_SUM, SCORE_N, SCORE_SUM, SCORE_SQ, CONF_N, CONF_SUM = range(9)
SOURCE_BASE = 9
N_SCALARS = SOURCE_BASE + len(SOURCES)


def _sketch_size(spec: FeatureSpec) -> int:
    return spec.sketch.size if spec.sketch is not None else 0


def _starts(sizes: list[int]) -> NDArray[np.int64]:
    return np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64) if sizes else np.zeros(0, np.int64)


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

    @property
    def hist_size(self) -> int:
        return int(sum(b.size for b in self.blocks))

    @property
    def sketch_size(self) -> int:
        return int(sum(_sketch_size(self.features[i]) for i in self.sketched))

    @property
    def n_slices(self) -> int:
        return 1 + len(self.slices)

    def block(self, j: int) -> slice:
        off = int(self.offsets[j])
        return slice(off, off + self.blocks[j].size)

    def sketch_block(self, k: int) -> slice:
        off = int(self.sketch_offsets[k])
        return slice(off, off + _sketch_size(self.features[self.sketched[k]]))

    def _numeric_matrix(self, rec: EventColumns, names: list[str]) -> NDArray[np.float64]:
        """Rows: the numeric features in order (``tokens_in`` from the event field), then confidence."""
        from_dicts = [f for f in names if f != TOKENS_IN]
        x = np.empty((len(names) + 1, len(rec)), dtype=np.float64)
        x[[i for i, f in enumerate(names) if f != TOKENS_IN]] = numeric_rows(rec.features, from_dicts)
        x[[i for i, f in enumerate(names) if f == TOKENS_IN] + [len(names)]] = numeric_matrix(
            [rec.tokens_in] * names.count(TOKENS_IN) + [rec.confidence], len(rec)
        )
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
        numeric = [j for j, f in enumerate(self.features) if f.kind == "numeric"]
        names = [self.features[j].name for j in numeric]
        if isinstance(rec, EventFrame):
            x = rec.numeric(names)
            categorical = rec.bins_of([f for f in self.features if f.kind != "numeric"])
        else:
            raw = raw_feature_columns(rec.features, [f for f in self.features if f.kind != "numeric"], rec.tokens_in)
            x = self._numeric_matrix(rec, names)
            categorical = {f.name: f.bin(raw[f.name]) for f in self.features if f.kind != "numeric"}
        nf = len(self.features)
        blocks = [*numeric, nf + 1] if self.confidence.kind == "numeric" else numeric
        hist = np.empty((n, len(self.blocks)), dtype=np.int64)
        if blocks != numeric:
            hist[:, blocks] = (numeric_bins([self.blocks[j] for j in blocks], x) + self.offsets[blocks, None]).T
        else:
            hist[:, blocks] = (numeric_bins([self.blocks[j] for j in blocks], x[:-1]) + self.offsets[blocks, None]).T
            conf = rec.frame["confidence"] if isinstance(rec, EventFrame) else rec.confidence
            hist[:, nf + 1] = self.confidence.bin(conf) + self.offsets[nf + 1]
        for j, spec in enumerate(self.features):
            if spec.kind != "numeric":
                hist[:, j] = categorical[spec.name] + self.offsets[j]
        sketch = np.empty((n, len(self.sketched)), dtype=np.int64)
        if self.sketched:
            rows = [numeric.index(j) for j in self.sketched]
            specs = [self.features[j].sketch for j in self.sketched]
            idx = sketch_indices(specs, x[rows])  # type: ignore[arg-type]
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
