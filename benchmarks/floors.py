"""How close ``DriftEngine.observe_frame`` is to what its design allows, in the same run.

    .venv/bin/python -m benchmarks.floors [--repeat 7] [--batches 10]

Issue 12 asks for 1,000,000 events/s from columns (20 features, 4 protected slices, labels). This
prints the engine's rate beside two floors measured on the same batches (5,000 events, each with a
label, as ``benchmarks.stats``: 14 numeric, 4 categorical and 2 boolean features):

- **numpy floor (events)**: the engine's own numpy kernels with all glue removed. The columns are
  given as arrays already (floats, category codes, output codes, slice rows, buckets). Each numeric
  value is binned (``NumericBinner``) and given its sketch cell (``SketchIndexer``), the flat
  indices are offset and repeated once per slice a row belongs to, and two ``bincount`` calls count
  the histograms and sketch cells of a batch. Nothing else: no reading out of polars, no running
  window totals, no scalars, no bucket bookkeeping.
- **Python floor (labels)**: a label arrives as a ``LabelChange`` object (the label join builds it
  from the stored row). The floor is reading the fields the engine needs with list comprehensions
  (the fastest way CPython 3.11 reads attributes), plus one river ADWIN update per verdict (the
  detector's contract is per label).

``floor = numpy floor + Python floor`` per event is the least this design can spend on one core.
Every figure is a median over ``--repeat`` runs (CPU time of this process).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np
from river.drift import ADWIN

from benchmarks.stats import BATCH, SLICES, make_stream, new_engine
from monitor.stats.event_frame import EventFrame
from tests.stats_fixtures import frame_of

CLOCK = time.process_time


def arrays_of(eng: Any, frame: Any) -> dict[str, Any]:
    """The batch's columns as the numpy floor takes them (made outside the timing)."""
    window = next(iter(eng._windows.values()))
    layout = window.layout
    plan = layout._bin_plan
    ef = EventFrame(frame)
    x = ef.numeric(plan.names)
    categorical = ef.bins_of(plan.other)
    output = ef.bins(layout.output, "output")
    member = ef.membership(layout.slices)
    slot = (np.floor(ef.served_at / window.bucket_seconds).astype(np.int64)) % window.ring
    return {"layout": layout, "plan": plan, "x": x, "categorical": categorical, "output": output,
            "member": member, "slot": slot, "n_slices": layout.n_slices, "ring": window.ring}


def numpy_floor(a: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Bin, sketch and count one batch with the engine's kernels and nothing else; returns the
    histogram and sketch counts per (slot, slice) row (what the window adds: a test compares)."""
    layout, plan, x = a["layout"], a["plan"], a["x"]
    n = x.shape[1]
    nf = len(layout.features)
    hist = np.empty((n, len(layout.blocks)), dtype=np.int64)
    hist[:, plan.hist_blocks] = (plan.binner.bins(x) + plan.hist_offsets).T
    for j, spec in zip(plan.other_blocks, plan.other, strict=True):
        hist[:, j] = a["categorical"][spec.name] + layout.offsets[j]
    hist[:, nf] = a["output"] + layout.offsets[nf]
    cell = plan.sketcher.indices(x[plan.sketch_rows])
    sketch = np.where(cell >= 0, cell + layout.sketch_offsets[:, None], -1).T
    rows = np.concatenate([np.arange(n), *a["member"]])
    sidx = np.concatenate([np.zeros(n, np.int64), *[np.full(m.size, j, np.int64)
                                                    for j, m in enumerate(a["member"], start=1)]])
    combo = a["slot"][rows] * a["n_slices"] + sidx
    h, k = layout.hist_size, layout.sketch_size
    cells = a["ring"] * a["n_slices"]
    counts = np.bincount((combo[:, None] * h + hist[rows]).ravel(), minlength=cells * h).reshape(cells, h)
    keys = (combo[:, None] * k + sketch[rows])[sketch[rows] >= 0]
    return counts, np.bincount(keys, minlength=cells * k).reshape(cells, k)


def python_floor(labels: list[Any], adwin: ADWIN) -> None:
    """Read what the engine reads of each label, and one ADWIN update per verdict."""
    _ = [c.served_at for c in labels]
    _ = [c.slice for c in labels]
    _ = [c.old for c in labels]
    new = [c.new for c in labels]
    verdicts = [n.was_correct for n in new]
    _ = [n.score for n in new]
    _ = [n.source for n in new]
    _ = [n.observed_at for n in new]
    _ = [n.failure_cluster for n in new]
    update = adwin.update
    for v in verdicts:
        if v is not None:
            update(1.0 if v else 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--batches", type=int, default=10)
    args = ap.parse_args()
    stream = make_stream(20, args.batches)
    batches = stream[4:]
    frames = [frame_of(ev) for ev, _ in batches]
    n_events = len(batches) * BATCH
    engine_rates, events_only, floors, label_floors = [], [], [], []
    for _ in range(args.repeat):
        eng = new_engine(SLICES, stream)
        t = CLOCK()
        for i, (frame, (_, lab)) in enumerate(zip(frames, batches, strict=True), start=4):
            eng.observe_frame(frame, lab, 30.0 * (i + 1))
        engine_rates.append(n_events / (CLOCK() - t))
        eng = new_engine(SLICES, stream)
        t = CLOCK()
        for i, frame in enumerate(frames, start=4):
            eng.observe_frame(frame, [], 30.0 * (i + 1))
        events_only.append(n_events / (CLOCK() - t))
        arrays = [arrays_of(eng, f) for f in frames]
        t = CLOCK()
        for a in arrays:
            numpy_floor(a)
        floors.append((CLOCK() - t) / n_events)
        adwin = ADWIN()
        t = CLOCK()
        for _, lab in batches:
            python_floor(lab, adwin)
        label_floors.append((CLOCK() - t) / n_events)
    rate, rate_events = statistics.median(engine_rates), statistics.median(events_only)
    ev_floor, lab_floor = statistics.median(floors), statistics.median(label_floors)
    floor = ev_floor + lab_floor
    print(f"batches of {BATCH:,} events, 20 features, 4 protected slices, one label per event; "
          f"medians of {args.repeat} (CPU time)")
    print("| | us per event | events/s | engine / floor |")
    print("|---|---|---|---|")
    print(f"| numpy floor (events: bin, sketch, count) | {ev_floor * 1e6:.2f} | {1 / ev_floor:,.0f} | |")
    print(f"| Python floor (labels: read fields, ADWIN) | {lab_floor * 1e6:.2f} | {1 / lab_floor:,.0f} | |")
    print(f"| floor, events and labels | {floor * 1e6:.2f} | {1 / floor:,.0f} | |")
    print(f"| `observe_frame`, events only | {1e6 / rate_events:.2f} | {rate_events:,.0f} | "
          f"{(1 / rate_events) / ev_floor:.2f}x the numpy floor |")
    print(f"| `observe_frame`, events and labels | {1e6 / rate:.2f} | {rate:,.0f} | "
          f"{(1 / rate) / floor:.2f}x the floor |")
    print(f"target 1,000,000 events/s = 1.00 us per event: the floor alone is {floor * 1e6:.2f} us "
          f"({floor * 1e6:.1f}x the target's budget)")


if __name__ == "__main__":
    main()
