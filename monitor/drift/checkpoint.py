"""A model's window state as bytes, and back: bucket counters, sketches, detectors, lineage.

The state is pickled (river's detectors are Rust/Cython objects whose supported serialization is
pickle) and read back with an unpickler that only builds the classes a checkpoint holds: numpy
arrays and dtypes, river's drift detectors, and this package's statistics classes. Anything else
(``os.system``, ``builtins.eval``, ...) raises :class:`CheckpointError`, so a row in
``window_checkpoint`` cannot run code; the worst a forged one can do is wrong counts, as a forged
``inference_log`` row could.

Examples
--------
>>> state = ModelState(None, None, {}, {}, [], {}, {})
>>> loads(dumps(state)) == state
True
>>> import pickle, os
>>> loads(pickle.dumps(os.system))
Traceback (most recent call last):
...
monitor.drift.checkpoint.CheckpointError: checkpoint refers to posix.system, which it may not hold
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass, field
from typing import Any

from monitor.detect.adwin import CorrectnessDrop
from monitor.drift.evidence import OutcomeTally
from monitor.drift.trend import TrendTracker
from monitor.snapshot import LineageChange
from monitor.stats.cluster_share import ClusterShares
from monitor.stats.delay_histogram import DelayHistogram
from monitor.stats.window import ModelWindow

FORMAT = 4  # bump when ModelState or a class it holds changes shape; older checkpoints are ignored

_EXACT = {
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.multiarray", "scalar"),
    ("collections", "deque"),
}
_CLASS_PREFIXES = (
    "monitor.stats.", "monitor.detect.", "monitor.drift.", "monitor.snapshot", "river.drift", "river._river_rust.drift",
)


class CheckpointError(ValueError):
    """The bytes are not a checkpoint this version can read."""


@dataclass
class ModelState:
    """Everything the engine holds for one model besides its reference profile."""

    window: ModelWindow | None
    cohort_window: ModelWindow | None
    adwin: dict[str, CorrectnessDrop]  # slice label -> detector
    lineage_last: dict[str, str]  # lineage field -> last value
    lineage_changes: list[LineageChange]
    tallies: dict[str, OutcomeTally]  # slice label -> first labels since the first prediction
    delays: dict[str, DelayHistogram]  # label source -> label delays of its first labels
    trend: TrendTracker | None = None  # rank CUSUMs of the numeric features
    clusters: dict[str, ClusterShares] = field(default_factory=dict)  # slice label -> failure clusters


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _EXACT:
            return super().find_class(module, name)
        if module.startswith(_CLASS_PREFIXES):
            found = super().find_class(module, name)
            if isinstance(found, type):
                return found
        raise CheckpointError(f"checkpoint refers to {module}.{name}, which it may not hold")


def dumps(state: ModelState) -> bytes:
    return pickle.dumps(state, protocol=5)


def loads(data: bytes) -> ModelState:
    try:
        state = _Unpickler(io.BytesIO(data)).load()
    except CheckpointError:
        raise
    except Exception as e:  # truncated bytes, a class that moved, ...
        raise CheckpointError(f"unreadable checkpoint ({type(e).__name__})") from e
    if not isinstance(state, ModelState):
        raise CheckpointError(f"checkpoint holds a {type(state).__name__}, not a ModelState")
    return state
