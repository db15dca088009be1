"""A model's reference profile: how its inputs, outputs and quality looked when it was accepted.

Holds the binning of every tracked feature (:class:`FeatureSpec`), and for the aggregate slice
``"all"`` and each protected slice the reference had rows for: per-feature bin counts (last bin =
missing), quantile-sketch counts of numeric features, output-class and confidence counts, and the
scalar sums from which the quality baseline (accuracy, mean score, label coverage per source)
follows. ``content_hash`` is the sha256 of the canonical JSON of everything but ``id``, ``version``,
``created_at`` and ``source``; ``id`` is derived from it, so equal content gives an equal id.

Examples
--------
>>> p = ReferenceProfile.from_json(ReferenceProfile.empty_for_doctest().to_json())
>>> p.content_hash == ReferenceProfile.empty_for_doctest().content_hash
True
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.snapshot import AGGREGATE
from monitor.stats.bins import FeatureSpec
from monitor.stats.errors import ProfileError
from monitor.stats.layout import (
    CONF_N,
    CONF_SUM,
    CORRECT_N,
    CORRECT_SUM,
    EVENTS,
    FIXED_POINT,
    LABELLED,
    N_SCALARS,
    SCORE_N,
    SCORE_SUM,
    SOURCE_BASE,
    SOURCES,
)

PROFILE_FORMAT = 1


@dataclass(frozen=True)
class SliceCounts:
    """Reference counts of one slice."""

    features: dict[str, list[int]]
    sketches: dict[str, dict[int, int]]
    output: list[int]
    confidence: list[int]
    scalars: list[int]
    _dense: dict[str, NDArray[np.int64]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def n(self) -> int:
        return int(self.scalars[EVENTS])

    def feature_counts(self, name: str) -> NDArray[np.int64]:
        return np.asarray(self.features[name], dtype=np.int64)

    def sketch_counts(self, name: str, size: int) -> NDArray[np.int64]:
        """Dense sketch counts (cached; read-only)."""
        out = self._dense.get(name)
        if out is None or out.size != size:
            out = np.zeros(size, dtype=np.int64)
            for i, c in self.sketches.get(name, {}).items():
                out[int(i)] = c
            out.setflags(write=False)
            self._dense[name] = out
        return out

    @property
    def accuracy(self) -> float | None:
        n = self.scalars[CORRECT_N]
        return self.scalars[CORRECT_SUM] / n if n > 0 else None

    @property
    def mean_score(self) -> float | None:
        n = self.scalars[SCORE_N]
        return self.scalars[SCORE_SUM] / FIXED_POINT / n if n > 0 else None

    @property
    def mean_confidence(self) -> float | None:
        n = self.scalars[CONF_N]
        return self.scalars[CONF_SUM] / FIXED_POINT / n if n > 0 else None

    def coverage(self, source: str | None = None) -> float | None:
        if self.n <= 0:
            return None
        k = LABELLED if source is None else SOURCE_BASE + SOURCES.index(source)
        return self.scalars[k] / self.n

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": self.features,
            "sketches": {k: [[int(i), int(c)] for i, c in sorted(v.items())] for k, v in self.sketches.items()},
            "output": self.output,
            "confidence": self.confidence,
            "scalars": self.scalars,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SliceCounts:
        scalars = [int(x) for x in d["scalars"]]
        if len(scalars) != N_SCALARS:
            raise ProfileError("profile scalars have an unexpected length")
        return cls(
            features={k: [int(x) for x in v] for k, v in d["features"].items()},
            sketches={k: {int(i): int(c) for i, c in v} for k, v in d["sketches"].items()},
            output=[int(x) for x in d["output"]],
            confidence=[int(x) for x in d["confidence"]],
            scalars=scalars,
        )


@dataclass(frozen=True)
class ReferenceProfile:
    model_id: str
    features: tuple[FeatureSpec, ...]
    output: FeatureSpec
    confidence: FeatureSpec
    slices: dict[str, SliceCounts]
    labelled: bool
    """Whether the reference carried labels, so its label coverage is meaningful."""
    version: int = 1
    created_at: float = 0.0
    source: str = "file"
    content_hash: str = field(init=False)
    id: str = field(init=False)

    def __post_init__(self) -> None:
        if AGGREGATE not in self.slices:
            raise ProfileError("a profile needs counts for the aggregate slice")
        digest = hashlib.sha256(_canonical(self._content()).encode()).hexdigest()
        object.__setattr__(self, "content_hash", digest)
        object.__setattr__(self, "id", "rp-" + digest[:16])

    @property
    def aggregate(self) -> SliceCounts:
        return self.slices[AGGREGATE]

    def feature(self, name: str) -> FeatureSpec | None:
        return next((f for f in self.features if f.name == name), None)

    def _content(self) -> dict[str, Any]:
        return {
            "format": PROFILE_FORMAT,
            "model_id": self.model_id,
            "features": [f.to_dict() for f in self.features],
            "output": self.output.to_dict(),
            "confidence": self.confidence.to_dict(),
            "slices": {k: v.to_dict() for k, v in sorted(self.slices.items())},
            "labelled": self.labelled,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            **self._content(),
            "id": self.id,
            "content_hash": self.content_hash,
            "version": self.version,
            "created_at": self.created_at,
            "source": self.source,
        }

    def to_json(self) -> str:
        return _canonical(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReferenceProfile:
        try:
            if d.get("format") != PROFILE_FORMAT:
                raise ProfileError("unsupported profile format")
            p = cls(
                model_id=str(d["model_id"]),
                features=tuple(FeatureSpec.from_dict(f) for f in d["features"]),
                output=FeatureSpec.from_dict(d["output"]),
                confidence=FeatureSpec.from_dict(d["confidence"]),
                slices={k: SliceCounts.from_dict(v) for k, v in d["slices"].items()},
                labelled=bool(d["labelled"]),
                version=int(d.get("version", 1)),
                created_at=float(d.get("created_at", 0.0)),
                source=str(d.get("source", "file")),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ProfileError(f"malformed reference profile ({type(e).__name__})") from e
        if d.get("content_hash") not in (None, p.content_hash):
            raise ProfileError("reference profile content does not match its hash")
        return p

    @classmethod
    def from_json(cls, text: str | bytes) -> ReferenceProfile:
        try:
            d = json.loads(text)
        except ValueError as e:
            raise ProfileError("reference profile is not valid JSON") from e
        return cls.from_dict(d)

    @classmethod
    def empty_for_doctest(cls) -> ReferenceProfile:
        z = SliceCounts({}, {}, [1, 0, 0, 0], [0, 0, 0, 1], [1] + [0] * (N_SCALARS - 1))
        return cls(
            "m",
            (),
            FeatureSpec.categorical("output", ["a"]),
            FeatureSpec.numeric("confidence", [0, 1]),
            {AGGREGATE: z},
            labelled=False,
        )


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
