"""How one tracked feature is binned: numeric (reference quantile edges), categorical (top-K), boolean.

Every kind maps a column to bin indices ``0 .. size - 1`` where the last bin is *missing* (absent,
null or of the wrong type); :attr:`FeatureSpec.value_bins` excludes it. Numeric bins are
``[underflow, [e0, e1), ..., [e_{m-2}, e_{m-1}], overflow]`` over the unique reference quantile
edges; categorical bins are ``[top-K categories..., other, unseen]`` where *other* holds values the
reference saw outside its top K (up to ``MAX_VOCABULARY`` names kept) and *unseen* everything else.

Examples
--------
>>> import polars as pl
>>> spec = FeatureSpec.numeric("x", [0.0, 1.0, 2.0])
>>> spec.bin(pl.Series([-1.0, 0.5, 2.0, 3.0, None])).tolist()
[0, 1, 2, 3, 4]
>>> cat = FeatureSpec.categorical("c", ["a"], ["b"])
>>> cat.bin(pl.Series(["a", "b", "z", None])).tolist()
[0, 1, 2, 3]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import polars as pl
from numpy.typing import NDArray

from monitor.stats.sketch import SketchSpec

Kind = Literal["numeric", "categorical", "boolean"]
MAX_VOCABULARY = 10_000
OTHER = "__other__"
UNSEEN = "__unseen__"


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    kind: Kind
    edges: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()
    vocabulary: tuple[str, ...] = ()
    sketch: SketchSpec | None = None
    _map: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind == "categorical":
            m = {c: i for i, c in enumerate(self.categories)}
            other = len(self.categories)
            for v in self.vocabulary:
                m.setdefault(v, other)
            self._map.update(m)

    @classmethod
    def numeric(cls, name: str, edges: Any, sketch: SketchSpec | None = None) -> FeatureSpec:
        e = np.unique(np.asarray(edges, dtype=np.float64))
        if e.size == 0 or not np.all(np.isfinite(e)):
            raise ValueError("numeric edges must be finite and non-empty")
        return cls(name, "numeric", edges=tuple(float(x) for x in e), sketch=sketch)

    @classmethod
    def categorical(cls, name: str, categories: Any, vocabulary: Any = ()) -> FeatureSpec:
        cats = tuple(str(c) for c in categories)
        voc = tuple(str(v) for v in vocabulary if str(v) not in set(cats))[:MAX_VOCABULARY]
        return cls(name, "categorical", categories=cats, vocabulary=voc)

    @classmethod
    def boolean(cls, name: str) -> FeatureSpec:
        return cls(name, "boolean")

    @property
    def value_bins(self) -> int:
        if self.kind == "numeric":
            return len(self.edges) + 1
        if self.kind == "categorical":
            return len(self.categories) + 2
        return 2

    @property
    def size(self) -> int:
        return self.value_bins + 1

    @property
    def missing_index(self) -> int:
        return self.value_bins

    @property
    def unseen_index(self) -> int | None:
        return len(self.categories) + 1 if self.kind == "categorical" else None

    @property
    def dtype(self) -> type[pl.DataType]:
        return {"numeric": pl.Float64, "categorical": pl.String, "boolean": pl.Boolean}[self.kind]

    def bin(self, column: pl.Series) -> NDArray[np.int64]:
        """Bin indices of a column already cast to :attr:`dtype` (nulls and NaN -> missing)."""
        if self.kind == "numeric":
            x = column.cast(pl.Float64).to_numpy()
            e = np.asarray(self.edges)
            idx = np.searchsorted(e, x, side="right").astype(np.int64)
            idx[x == e[-1]] = e.size - 1 if e.size > 1 else 0
            idx[~np.isfinite(x)] = self.missing_index
            return idx
        if self.kind == "categorical":
            null = column.is_null().to_numpy()
            idx = (
                column.replace_strict(self._map, default=len(self.categories) + 1, return_dtype=pl.Int64)
                .to_numpy()
                .astype(np.int64, copy=True)
            )
            idx[null] = self.missing_index
            return idx
        null = column.is_null().to_numpy()
        idx = column.fill_null(False).cast(pl.Int64).to_numpy().astype(np.int64, copy=True)
        idx[null] = self.missing_index
        return idx

    def points(self) -> NDArray[np.float64]:
        """Representative point of each value bin (numeric only): outer edges for under/overflow."""
        e = np.asarray(self.edges)
        mids = (e[:-1] + e[1:]) / 2.0
        return np.concatenate([[e[0]], mids, [e[-1]]])

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.kind == "numeric":
            d["edges"] = list(self.edges)
            d["sketch"] = self.sketch.to_dict() if self.sketch else None
        elif self.kind == "categorical":
            d["categories"] = list(self.categories)
            d["vocabulary"] = list(self.vocabulary)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureSpec:
        kind = d["kind"]
        if kind == "numeric":
            sk = SketchSpec.from_dict(d["sketch"]) if d.get("sketch") else None
            return cls.numeric(d["name"], d["edges"], sk)
        if kind == "categorical":
            return cls.categorical(d["name"], d["categories"], d.get("vocabulary", ()))
        if kind == "boolean":
            return cls.boolean(d["name"])
        raise ValueError(f"unknown feature kind {kind!r}")
