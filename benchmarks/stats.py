"""Throughput of the drift statistics, side by side with a per-event loop and Evidently.

    .venv/bin/python -m benchmarks.stats [--batches 20] [--repeat 5] [--no-evidently] [--cpu-time]

1. ``DriftEngine.observe`` on batches of 5,000 ``InferenceEvent`` objects (reference already set),
   events/s as the median of ``--repeat`` runs, for a few feature/slice counts; the share spent
   gathering columns from the event objects is timed separately (``records_from_events``).
2. ``DriftEngine.evaluate()`` time per snapshot as features and protected slices grow.
3. Baseline in the same run: a plain per-event Python loop computing the same per-feature
   histograms (bisect on the same edges) and PSI, on the same stream as each row (so 10 and 20
   features); each row prints ``observe()`` / loop.
4. Evidently's data drift (``DataDriftPreset``) recomputed from the raw rows of the same window,
   as its users run it, in a separate venv (``benchmarks/.peers-venv``, created on first use with
   ``pip install evidently``) and a subprocess; it is never a dependency of Slicewatch. If the install
   fails, that is printed and the rest still runs.
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import numpy as np
import polars as pl

from monitor.drift import DriftEngine
from monitor.stats.columns import records_from_events
from monitor.stats.psi import psi
from tests.stats_fixtures import StreamSpec, frame_of, make_batch, to_rows

BATCH = 5000
CLOCK = time.perf_counter  # --cpu-time: time.process_time (this process's CPU time, steadier on a shared machine)
PEERS = Path(__file__).parent / ".peers-venv"
SLICES = {"language": ["es", "ja"], "domain": ["regulatory", "medical"]}
FIVE_SLICES = {"language": ["es", "ja"], "domain": ["regulatory", "medical", "legal"]}
WIDE_SLICES = {"language": ["es", "ja", "de", "fr"], "domain": ["regulatory", "medical", "general"]}

EVIDENTLY_SCRIPT = r"""
import json, sys, time
import pandas as pd
ref = pd.read_parquet(sys.argv[1]); cur = pd.read_parquet(sys.argv[2]); repeat = int(sys.argv[3])
try:
    from evidently import Report, Dataset, DataDefinition
    from evidently.presets import DataDriftPreset
    new_api = True
except ImportError:
    from evidently.report import Report
    from evidently.metric_preset import DataDriftPreset
    new_api = False
times = []
for _ in range(repeat):
    t = time.perf_counter()
    report = Report([DataDriftPreset()])
    if new_api:
        report.run(cur, ref)  # the new API takes (current, reference) DataFrames
    else:
        report.run(reference_data=ref, current_data=cur)
    times.append(time.perf_counter() - t)
import evidently
print(json.dumps({"version": evidently.__version__, "seconds": sorted(times)[len(times) // 2]}))
"""


def spec_for(n_features: int) -> StreamSpec:
    n_num = max(1, n_features * 7 // 10)
    n_cat = max(0, n_features * 2 // 10)
    return StreamSpec(n_numeric=n_num, n_categorical=n_cat, n_boolean=max(0, n_features - n_num - n_cat))


def make_stream(n_features: int, batches: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    spec = spec_for(n_features)
    return [make_batch(rng, spec, BATCH, 30.0 * i, 30.0 * (i + 1)) for i in range(batches + 4)]


def new_engine(slices: dict[str, list[str]], stream, short_windows: tuple[int, ...] = ()) -> DriftEngine:
    eng = DriftEngine(bucket_seconds=60, window_buckets=60, allowed_lateness_s=600, protected_slices=slices,
                      auto_reference_events=4 * BATCH, short_windows=short_windows)
    for i in range(4):
        eng.observe(stream[i][0], [], 30.0 * (i + 1))
    assert eng.reference("m1") is not None
    return eng


def time_observe(slices, stream, repeat: int, with_labels: bool) -> tuple[float, float, float]:
    """events/s of ``observe`` (event objects), of ``observe_frame`` (the same events as columns,
    decoded beforehand by ``pl.read_ndjson``: the decode is the ingest benchmark's) and of gathering
    columns from the objects alone."""
    rates, frames_rates, gather = [], [], []
    frames = [frame_of(ev) for ev, _ in stream[4:]]
    for _ in range(repeat):
        eng = new_engine(slices, stream)
        t = CLOCK()
        for i, (ev, lab) in enumerate(stream[4:], start=4):
            eng.observe(ev, lab if with_labels else [], 30.0 * (i + 1))
        rates.append((len(stream) - 4) * BATCH / (CLOCK() - t))
        eng = new_engine(slices, stream)
        t = CLOCK()
        for i, (frame, (_, lab)) in enumerate(zip(frames, stream[4:], strict=True), start=4):
            eng.observe_frame(frame, lab if with_labels else [], 30.0 * (i + 1))
        frames_rates.append((len(stream) - 4) * BATCH / (CLOCK() - t))
        t = CLOCK()
        for ev, _ in stream[4:]:
            records_from_events(ev)
        gather.append((len(stream) - 4) * BATCH / (CLOCK() - t))
    return statistics.median(rates), statistics.median(frames_rates), statistics.median(gather)


def per_event_loop(stream, eng: DriftEngine, repeat: int) -> float:
    """Same per-feature histograms + PSI, one event and one feature at a time (numeric: bisect on the
    reference edges; categorical/boolean: dict lookup)."""
    profile = eng.reference("m1")
    assert profile is not None
    specs = [f for f in profile.features if f.name != "tokens_in"]
    rates = []
    for _ in range(repeat):
        counts = {f.name: [0] * f.size for f in specs}
        t = CLOCK()
        for ev, _ in stream[4:]:
            for e in ev:
                feats = e.input_features
                for f in specs:
                    v = feats.get(f.name)
                    c = counts[f.name]
                    if v is None:
                        c[-1] += 1
                    elif f.kind == "numeric":
                        c[bisect.bisect_right(f.edges, v)] += 1
                    elif f.kind == "boolean":
                        c[int(v)] += 1
                    else:
                        c[f._map.get(v, len(f.categories) + 1)] += 1
        for f in specs:
            psi(profile.aggregate.feature_counts(f.name)[:-1], counts[f.name][:-1])
        rates.append((len(stream) - 4) * BATCH / (CLOCK() - t))
    return statistics.median(rates)


def time_evaluate(n_features: int, slices: dict[str, list[str]], repeat: int,
                  short_windows: tuple[int, ...] = ()) -> tuple[float, float]:
    """Seconds per ``evaluate()`` of one model whose window changed since the last evaluation (a
    batch of 50 events observed before each, not timed), and of the same model unchanged."""
    stream = make_stream(n_features, 8, seed=1)
    eng = new_engine(slices, stream, short_windows)
    for i, (ev, lab) in enumerate(stream[4:], start=4):
        eng.observe(ev, lab, 30.0 * (i + 1))
    now = 30.0 * len(stream)
    small = stream[-1][0][:50]
    changed, unchanged = [], []
    for _ in range(max(repeat, 10)):
        eng.observe(small, [], now)
        t = CLOCK()
        eng.evaluate(now)
        changed.append(CLOCK() - t)
        t = CLOCK()
        eng.evaluate(now)
        unchanged.append(CLOCK() - t)
    return statistics.median(changed), statistics.median(unchanged)


def time_per_block(n_features: int, slices: dict[str, list[str]], repeat: int) -> float:
    """The baseline, in the same run: what the evaluation before issue 12 computed per evaluation
    for the same model, without making its values: the main window summed from all its buckets,
    then one call per (slice, block) of the per-block functions (chi-square, PSI, JS, and KS plus
    Wasserstein or the chi-square statistic). A lower bound of that code's cost."""
    from monitor.stats.chi_square import chi_square
    from monitor.stats.jensen_shannon import jensen_shannon
    from monitor.stats.ks import ks_binned
    from monitor.stats.wasserstein import wasserstein_binned

    stream = make_stream(n_features, 8, seed=1)
    eng = new_engine(slices, stream)
    for i, (ev, lab) in enumerate(stream[4:], start=4):
        eng.observe(ev, lab, 30.0 * (i + 1))
    now = 30.0 * len(stream)
    window = eng._windows["m1"]
    profile = eng.reference("m1")
    assert profile is not None
    lay, s = window.layout, window.layout.n_slices
    ts = []
    for _ in range(max(repeat, 10)):
        t = CLOCK()
        cur = math.floor(now / window.bucket_seconds)
        slots = np.flatnonzero((window.slot_bucket > cur - window.window_buckets) & (window.slot_bucket <= cur))
        rows = (slots[:, None] * s + np.arange(s)).ravel()
        hist = window.hist[rows].reshape(slots.size, s, -1).sum(axis=0)
        sum(window.slot_sketch(k) for k in slots.tolist())  # the old code summed dense sketch rows
        for k in range(s):
            for j, spec in enumerate(lay.blocks):
                blk = lay.block(j)
                agg = profile.aggregate
                ref = (agg.feature_counts(spec.name) if j < len(lay.features)
                       else np.asarray(agg.output if j == len(lay.features) else agg.confidence))
                r, c = ref[:-1], hist[k][blk][:-1]
                if r.sum() == 0 or c.sum() == 0:
                    continue
                chi_square(r, c)
                psi(r, c)
                jensen_shannon(r, c)
                if spec.kind == "numeric":
                    ks_binned(r, c)
                    wasserstein_binned(spec.points(), r, c)
        ts.append(CLOCK() - t)
    return statistics.median(ts)


def time_fleet(n_models: int, n_features: int, slices: dict[str, list[str]], cycles: int,
               per_model: int = 50, short_windows: tuple[int, ...] = ()) -> tuple[float, float]:
    """CPU seconds of ``evaluate()`` per 15 s cycle for ``n_models`` models (one reference profile
    copied to each id), every model receiving ``per_model`` events per cycle (observe not timed);
    and the same with one model in ten receiving events (the rest idle)."""
    stream = make_stream(n_features, 4, seed=2)
    ref = new_engine(slices, stream)
    profile = ref.reference("m1")
    assert profile is not None
    eng = DriftEngine(bucket_seconds=60, window_buckets=60, allowed_lateness_s=600, protected_slices=slices,
                      short_windows=short_windows)
    ids = [f"model-{i:04d}" for i in range(n_models)]
    for m in ids:
        eng.set_reference(m, replace(profile, model_id=m))
    events = stream[-1][0]
    results = []
    for share in (1, 10):
        ts = []
        for c in range(cycles):
            now = 120.0 + 15.0 * c
            batch = [msgspec.structs.replace(e, model_id=m, served_at=datetime.fromtimestamp(now - 1, UTC))
                     for k, m in enumerate(ids) if k % share == 0 for e in events[:per_model]]
            eng.observe(batch, [], now)
            t = time.process_time()
            eng.evaluate(now)
            ts.append(time.process_time() - t)
        results.append(statistics.median(ts[1:]) if len(ts) > 1 else ts[0])
    return results[0], results[1]


def ensure_peers_venv() -> Path | None:
    py = PEERS / "bin" / "python"
    probe = [str(py), "-c", "import evidently, pandas, pyarrow"]
    if py.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return py
    print(f"creating {PEERS} and installing evidently (first run only) ...", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(PEERS)], check=True, capture_output=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "evidently", "pandas<3", "pyarrow"], check=True,
                       capture_output=True, timeout=1200)
    except (subprocess.SubprocessError, OSError) as e:
        print(f"EVIDENTLY UNAVAILABLE: installing it into {PEERS} failed ({type(e).__name__}); skipping it")
        return None
    return py if subprocess.run(probe, capture_output=True).returncode == 0 else None


def time_evidently(stream, n_window_batches: int, repeat: int) -> dict | None:
    py = ensure_peers_venv()
    if py is None:
        return None
    ref_events = [e for ev, _ in stream[:4] for e in ev]
    cur_events = [e for ev, _ in stream[4:4 + n_window_batches] for e in ev]

    def frame(events) -> pl.DataFrame:
        rows = to_rows(events, [])
        return pl.DataFrame([{**r["input_features"], "tokens_in": r["tokens_in"]} for r in rows])

    with tempfile.TemporaryDirectory() as d:
        ref_p, cur_p = Path(d) / "ref.parquet", Path(d) / "cur.parquet"
        frame(ref_events).write_parquet(ref_p)
        frame(cur_events).write_parquet(cur_p)
        out = subprocess.run([str(py), "-c", EVIDENTLY_SCRIPT, str(ref_p), str(cur_p), str(repeat)],
                             capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        print("EVIDENTLY FAILED:", out.stderr.strip().splitlines()[-1:] or "no output")
        return None
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["rows"] = len(cur_events)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-evidently", action="store_true")
    ap.add_argument("--cpu-time", action="store_true", help="time with process CPU time instead of wall time")
    args = ap.parse_args()
    if args.cpu_time:
        global CLOCK
        CLOCK = time.process_time

    print(f"batches of {BATCH} events, {args.batches} batches per run, median of {args.repeat} runs\n")
    print("| features | protected slices | labels | observe() ev/s | observe_frame() ev/s | per-event loop ev/s "
          "| observe() / loop | observe_frame() / loop | gather columns only ev/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    main_stream = None
    streams: dict[int, list] = {}
    loops: dict[int, float] = {}
    for n_features, slices, labels in ((10, {}, False), (10, SLICES, False), (10, SLICES, True),
                                        (20, SLICES, False), (20, SLICES, True)):
        if n_features not in streams:
            streams[n_features] = make_stream(n_features, args.batches)
        stream = streams[n_features]
        rate, frame_rate, gather = time_observe(slices, stream, args.repeat, labels)
        if n_features not in loops:  # same run, same stream: the baseline the ratio is taken against
            loops[n_features] = per_event_loop(stream, new_engine({}, stream), args.repeat)
        loop = loops[n_features]
        n_sl = sum(len(v) for v in slices.values())
        print(f"| {n_features} | {n_sl} | {'yes' if labels else 'no'} | {rate:,.0f} | {frame_rate:,.0f} | "
              f"{loop:,.0f} | {rate / loop:.2f}x | {frame_rate / loop:.2f}x | {gather:,.0f} |", flush=True)
        if n_features == 10 and not slices:
            main_stream, main_rate = stream, rate
    assert main_stream is not None
    loop_rate = loops[10]
    print(f"\nper-event Python loop (histograms + PSI only, no slices/sketches/labels): {loop_rate:,.0f} ev/s "
          f"at 10 features; observe() / loop = {main_rate / loop_rate:.2f}x")

    print("\n| features | protected slice values | evaluate() ms, changed model, main window | with the 5 and 15 min "
          "windows | unchanged model | changed, per-block functions (before issue 12) | changed / before |")
    print("|---|---|---|---|---|---|---|")
    for n_features in (10, 20, 50):
        for slices in ({}, FIVE_SLICES, WIDE_SLICES):
            ms, idle = (x * 1000 for x in time_evaluate(n_features, slices, args.repeat))
            ms_short = time_evaluate(n_features, slices, args.repeat, (5, 15))[0] * 1000
            before = time_per_block(n_features, slices, args.repeat) * 1000
            print(f"| {n_features} | {sum(len(v) for v in slices.values())} | {ms:.2f} | {ms_short:.2f} | "
                  f"{idle:.2f} | {before:.2f} | {ms / before:.2f} |", flush=True)
    n_models = 1000
    print()
    for short, what in (((), "main window"), ((5, 15), "with the default 5 and 15 min windows")):
        busy, tenth = time_fleet(n_models, 20, FIVE_SLICES, max(3, args.repeat), short_windows=short)
        print(f"{n_models} models x 20 features x 5 protected slice values, {what}: evaluate() per 15 s cycle "
              f"{busy:.2f} CPU s ({busy / 15 * 100:.0f} % of a core) with events for every model, {tenth:.2f} CPU s "
              f"({tenth / 15 * 100:.0f} %) with events for one model in ten", flush=True)

    if args.no_evidently:
        return
    window_batches = min(args.batches, 20)
    ev = time_evidently(main_stream, window_batches, max(1, args.repeat // 2))
    if ev is None:
        return
    rows = ev["rows"]
    ours_eval = time_evaluate(10, {}, args.repeat)
    ours_total = rows / main_rate + ours_eval
    print(f"\nEvidently {ev['version']} DataDriftPreset on a window of {rows:,} rows (10 features + tokens_in), "
          f"recomputed from raw rows: {ev['seconds']:.2f} s per evaluation = {rows / ev['seconds']:,.0f} rows/s")
    print(f"Slicewatch: observe those rows once ({rows / main_rate:.2f} s) + evaluate() ({ours_eval * 1000:.1f} ms)"
          f" = {ours_total:.2f} s; per evaluation after that only evaluate(): "
          f"{ev['seconds'] / ours_eval:,.0f}x faster; first evaluation {ev['seconds'] / ours_total:.1f}x")
    if not math.isfinite(ours_total):
        return


if __name__ == "__main__":
    main()
