"""Peak RSS of the drift engine over a long stream: it must stay flat once the window is full.

    .venv/bin/python -m benchmarks.memory [--events 10000000] [--batch 5000] [--batch-seconds 30]

A fresh subprocess (so nothing else inflates its peak) feeds ``--events`` inference events, half of
them with a label, in batches of ``--batch`` through ``DriftEngine.observe`` and calls ``evaluate``
after every batch. Event time advances ``--batch-seconds`` per batch, so with the default 1 h window
(60 x 60 s buckets) the window is full after 120 batches (600,000 events) and then slides. Four
models, 6 features + ``tokens_in``, three protected slices; reference profiles built automatically
from each model's first 5,000 events. Every 10^6 events the child prints VmHWM (peak RSS) and VmRSS
from ``/proc/self/status``; the parent prints the series and the ratio of the last peak to the first
peak after warm-up (2 x the window).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime

from monitor.config import IngestSettings

MODELS = ("m-a", "m-b", "m-c", "m-d")
SLICES = {"language": ["es", "ja"], "domain": ["regulatory"]}


def _status() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmHWM:", "VmRSS:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0])  # kB
    return out


def child(events: int, batch: int, batch_seconds: float, every: int, gc_gen0_threshold: int) -> None:
    import numpy as np

    from monitor.app import tune_gc
    from monitor.drift import DriftEngine
    from monitor.events import InferenceEvent
    from monitor.records import Label, LabelChange

    rng = np.random.default_rng(0)
    pool = 20_000
    langs = rng.choice(["en", "es", "ja", "de"], pool, p=[0.8, 0.1, 0.05, 0.05]).tolist()
    domains = rng.choice(["general", "regulatory", "medical"], pool, p=[0.9, 0.05, 0.05]).tolist()
    num = rng.normal(0, 1, (pool, 4)).tolist()
    cats = rng.choice(["a", "b", "c", "d"], pool).tolist()
    bools = (rng.random(pool) < 0.3).tolist()
    feats = [{"x0": n[0], "x1": n[1], "x2": n[2], "x3": n[3], "c0": c, "b0": b}
             for n, c, b in zip(num, cats, bools, strict=True)]
    slices = [{"language": a, "domain": d} for a, d in zip(langs, domains, strict=True)]
    outputs = rng.choice(["yes", "no", "maybe"], pool).tolist()
    conf = rng.beta(8, 2, pool).tolist()
    tokens = np.maximum(1, rng.lognormal(5, 1, pool)).astype(int).tolist()
    correct = (rng.random(pool) < 0.9).tolist()

    engine = DriftEngine(protected_slices=SLICES, auto_reference_events=5000)
    tune_gc(gc_gen0_threshold)  # as `slicewatch run` does
    fed = 0
    b = 0
    t_feed = 0.0
    print(json.dumps({"events": 0, "elapsed_s": 0.0, **_status()}), flush=True)
    start = time.perf_counter()
    while fed < events:
        n = min(batch, events - fed)
        t0 = b * batch_seconds
        offs = rng.integers(0, pool, n).tolist()
        ts = (t0 + np.sort(rng.uniform(0, batch_seconds, n))).tolist()
        evs, labels = [], []
        for j in range(n):
            k = offs[j]
            model = MODELS[j % len(MODELS)]
            rid = f"{b}-{j}"
            evs.append(InferenceEvent(
                schema_version=1, request_id=rid, model_id=model, served_at=datetime.fromtimestamp(ts[j], tz=UTC),
                input_features=feats[k], output=outputs[k], confidence=conf[k], slice=slices[k], tokens_in=tokens[k],
            ))
            if j % 2 == 0:
                labels.append(LabelChange(rid, model, ts[j], slices[k], feats[k], None,
                                          Label(correct[k], None, "human", ts[j] + 1.0)))
        now = t0 + batch_seconds
        t = time.perf_counter()
        engine.observe(evs, labels, now)
        engine.evaluate(now)
        t_feed += time.perf_counter() - t
        before = fed
        fed += n
        b += 1
        if fed // every > before // every or fed == events:
            print(json.dumps({"events": fed, "elapsed_s": round(time.perf_counter() - start, 1),
                              "engine_s": round(t_feed, 1), "state_size": engine.state_size, **_status()}),
                  flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--batch-seconds", type=float, default=30.0)
    ap.add_argument("--every", type=int, default=1_000_000, help="sample every N events")
    ap.add_argument("--gc-gen0-threshold", type=int, default=IngestSettings().gc_gen0_threshold,
                    help="as `slicewatch run` sets it (ingest.gc_gen0_threshold; 0: Python's defaults)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.events, args.batch, args.batch_seconds, args.every, args.gc_gen0_threshold)
        return
    window_events = 3600 / args.batch_seconds * args.batch
    print(f"{args.events:,} events in batches of {args.batch:,}, {args.batch_seconds:g} s of event time per batch: "
          f"the 1 h window holds {window_events:,.0f} events; observe + evaluate per batch\n")
    cmd = [sys.executable, "-m", "benchmarks.memory", "--child", "--events", str(args.events), "--batch",
           str(args.batch), "--batch-seconds", str(args.batch_seconds), "--every", str(args.every),
           "--gc-gen0-threshold", str(args.gc_gen0_threshold)]
    samples = []
    print("| events | peak RSS (VmHWM) MiB | RSS MiB | engine state counters | elapsed s | events/s so far |")
    print("|---|---|---|---|---|---|")
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            s = json.loads(line)
            samples.append(s)
            rate = s["events"] / s["elapsed_s"] if s["elapsed_s"] else 0.0
            print(f"| {s['events']:,} | {s['VmHWM'] / 1024:,.1f} | {s['VmRSS'] / 1024:,.1f} | "
                  f"{s.get('state_size', 0):,} | {s['elapsed_s']:,.0f} | {rate:,.0f} |", flush=True)
    if proc.returncode != 0:
        raise SystemExit(f"child failed with exit code {proc.returncode}")
    warm = [s for s in samples if s["events"] >= 2 * window_events]
    if len(warm) >= 2:
        first, last = warm[0], warm[-1]
        print(f"\npeak RSS after warm-up (>= {2 * window_events:,.0f} events): first {first['VmHWM'] / 1024:,.1f} MiB "
              f"at {first['events']:,}, last {last['VmHWM'] / 1024:,.1f} MiB at {last['events']:,}: "
              f"ratio {last['VmHWM'] / first['VmHWM']:.3f}")
    else:
        print("\nnot enough samples after warm-up for a ratio; use more --events or a smaller --every")


if __name__ == "__main__":
    main()
