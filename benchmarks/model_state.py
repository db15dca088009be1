"""What one model's drift state costs: resident memory and its checkpoint, once the window is full.

    .venv/bin/python -m benchmarks.model_state [--models 20] [--rate 200] [--minutes 70]

``--models`` models, each with 20 features (14 numeric and sketched) and the protected slices
``language=es,ja`` and ``domain=regulatory,medical,legal`` (5 values), get ``--rate`` inferences
per minute each (labelled) for ``--minutes`` of event time (the default 1 h window of 60 buckets plus
the ring's 10 future buckets), in 15 s batches, and ``evaluate()`` runs every minute, as
``slicewatch run`` with the default settings. Printed: the process's resident memory (VmRSS)
growth per model, and each model's checkpoint (the pickle ``Takeover`` writes every 60 s, and its
zlib level 1 compression) in bytes and CPU time. Run it in a fresh process: nothing else allocates.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import zlib

import numpy as np

from monitor.drift import DriftEngine
from tests.stats_fixtures import StreamSpec, make_batch

SLICES = {"language": ["es", "ja"], "domain": ["regulatory", "medical", "legal"]}
SPEC = StreamSpec(n_numeric=14, n_categorical=4, n_boolean=2)


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=20)
    ap.add_argument("--rate", type=float, default=200.0, help="inferences per minute per model")
    ap.add_argument("--minutes", type=int, default=70)
    args = ap.parse_args()
    gc.set_threshold(20_000)  # as `slicewatch run` tunes it
    rng = np.random.default_rng(0)
    eng = DriftEngine(bucket_seconds=60, window_buckets=60, allowed_lateness_s=600, protected_slices=SLICES,
                      auto_reference_events=5000, short_windows=(5, 15))
    ids = [f"model-{i:03d}" for i in range(args.models)]
    for m in ids:  # reference profiles from each model's first 5,000 events, before the clock starts
        for q in range(5):
            eng.observe(make_batch(rng, StreamSpec(**{**SPEC.__dict__, "model_id": m}), 1000, q, q + 1)[0], [], 5.0)
    gc.collect()
    base = rss_mib()
    per_batch = max(1, round(args.rate / 4))
    t0, observe_s, evaluate_s = 60.0, 0.0, 0.0
    for i in range(args.minutes * 4):
        start = t0 + 15.0 * i
        for m in ids:
            ev, lab = make_batch(rng, StreamSpec(**{**SPEC.__dict__, "model_id": m}), per_batch, start, start + 15)
            c = time.process_time()
            eng.observe(ev, lab, start + 15)
            observe_s += time.process_time() - c
        if i % 4 == 3:
            c = time.process_time()
            eng.evaluate(start + 15)
            evaluate_s += time.process_time() - c
    gc.collect()
    grown = rss_mib() - base
    sizes, packed, pickle_s, zlib_s = [], [], [], []
    for m in ids:
        c = time.process_time()
        blob = eng.checkpoint(m)
        pickle_s.append(time.process_time() - c)
        assert blob is not None
        c = time.process_time()
        packed.append(len(zlib.compress(blob, 1)))
        zlib_s.append(time.process_time() - c)
        sizes.append(len(blob))
    n_batches = args.minutes * 4 * args.models
    print(f"{args.models} models x 20 features x 5 protected slice values, {args.rate:g} inferences/min each, "
          f"{args.minutes} min of event time")
    print(f"resident memory growth: {grown:.1f} MiB = {grown / args.models:.2f} MiB per model")
    print(f"checkpoint per model (median): {statistics.median(sizes) / 1e6:.2f} MB pickled in "
          f"{statistics.median(pickle_s) * 1000:.1f} ms CPU, {statistics.median(packed) / 1e6:.3f} MB after zlib-1 in "
          f"{statistics.median(zlib_s) * 1000:.1f} ms CPU")
    print(f"observe: {observe_s / n_batches * 1e6:.0f} us CPU per model batch of {per_batch}; "
          f"evaluate(): {evaluate_s / (args.minutes * args.models) * 1000:.2f} ms CPU per model and minute")


if __name__ == "__main__":
    main()
