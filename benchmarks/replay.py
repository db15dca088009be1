"""Replay benchmark: ``slicewatch replay`` end to end on 12 h of one model, Evidently beside it.

    .venv/bin/python -m benchmarks.replay [--hours 12] [--rate 200] [--repeat 3] [--no-evidently]
                                          [--write-dir DIR] [--profile] [--split]

The stream (seeded, written as JSONL once per run): one model at ``--rate`` inferences per minute
with 18 input features (10 numeric, 4 categorical with the slice keys ``language``, ``domain``,
``customer_tier``, 1 boolean, 3 integer-valued), the output class and its confidence, and half of
the predictions labelled 30-180 s later (feedback events). Protected slices ``language=es,ja``,
``domain=regulatory,legal``, ``customer_tier=gold``: 5 values. At half time a promotion to
``m-bench@2`` drops ``language=es`` accuracy from 0.90 to 0.80, and ``x0`` drifts 0.8 sd over the
second half, so the replay has incidents to find.

Each repetition runs :func:`monitor.app.replay` (decode, SQLite store, label join, statistics at
the live cadence, alerting, drift events to a file) on the files, timed wall-clock; events/s is
(inference + feedback events) / seconds. Evidently's ``DataDriftPreset`` runs on the same stream as
tumbling hourly reports against the first hour (its usual batch use), timed in the same run;
the ratio Slicewatch / Evidently is the machine-independent figure. Medians over ``--repeat``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from monitor.demo.traffic import rfc3339

START = 1_790_000_040.0  # a whole minute
MODEL, NEW_MODEL = "m-bench@1", "m-bench@2"
LANGUAGES, LANGUAGE_P = ["en", "es", "ja", "de"], [0.6, 0.1, 0.1, 0.2]
DOMAINS, DOMAIN_P = ["general", "regulatory", "legal"], [0.8, 0.1, 0.1]
TIERS, TIER_P = ["free", "gold"], [0.8, 0.2]
CATS = ["a", "b", "c", "d", "e", "f"]
CLASSES = ["yes", "no", "unsure"]
PROTECTED = {"language": ["es", "ja"], "domain": ["regulatory", "legal"], "customer_tier": ["gold"]}


def write_stream(directory: Path, hours: float, rate_per_min: float, seed: int = 7) -> tuple[Path, Path, Path, int]:
    """The benchmark's three JSONL files; returns their paths and the number of events."""
    rng = np.random.default_rng(seed)
    end = START + hours * 3600
    n = int(hours * 60 * rate_per_min)
    served = np.sort(rng.uniform(START, end, n))
    half = START + hours * 1800
    after = served >= half
    lang = rng.choice(LANGUAGES, size=n, p=LANGUAGE_P)
    domain = rng.choice(DOMAINS, size=n, p=DOMAIN_P)
    tier = rng.choice(TIERS, size=n, p=TIER_P)
    drift = np.where(after, 0.8 * (served - half) / (end - half), 0.0)
    x = rng.normal(0.0, 1.0, (n, 10))
    x[:, 0] += drift
    c = rng.integers(0, len(CATS), (n, 1))
    flag = rng.random(n) < 0.3
    ints = np.stack([rng.poisson(40, n), rng.poisson(3, n), rng.integers(0, 1000, n)], axis=1)
    cls = rng.choice(len(CLASSES), size=n, p=[0.5, 0.4, 0.1])
    conf = rng.beta(8, 2, n)
    acc = np.where(after & (lang == "es"), 0.80, 0.90)
    correct = rng.random(n) < acc
    labelled = rng.random(n) < 0.5
    delay = rng.uniform(30, 180, n)
    inference, feedback = [], []
    for i in range(n):
        rid = f"r-{i:08d}"
        inference.append(json.dumps({
            "schema_version": 1, "request_id": rid, "model_id": NEW_MODEL if after[i] else MODEL,
            "served_at": rfc3339(float(served[i])),
            "input_features": {
                "language": str(lang[i]), "domain": str(domain[i]), "customer_tier": str(tier[i]),
                "c0": CATS[int(c[i, 0])], "has_attachment": bool(flag[i]),
                **{f"x{k}": round(float(x[i, k]), 4) for k in range(10)},
                "tokens": int(ints[i, 0]), "turns": int(ints[i, 1]), "account_age_d": int(ints[i, 2]),
            },
            "output": CLASSES[int(cls[i])], "confidence": round(float(conf[i]), 4),
            "lineage": {"prompt_template_sha": "0" * 64, "dataset_version": "ds-1"},
        }))
        if labelled[i]:
            feedback.append((float(served[i] + delay[i]), json.dumps({
                "schema_version": 1, "request_id": rid, "observed_at": rfc3339(float(served[i] + delay[i])),
                "was_correct": bool(correct[i]), "source": "human",
            })))
    feedback.sort(key=lambda p: p[0])
    promotion = json.dumps({"schema_version": 1, "model_id": NEW_MODEL, "promoted_at": rfc3339(half - 1),
                            "rollback_target": MODEL})
    paths = directory / "inference.jsonl", directory / "feedback.jsonl", directory / "promotions.jsonl"
    paths[0].write_text("\n".join(inference) + "\n")
    paths[1].write_text("\n".join(f for _, f in feedback) + "\n")
    paths[2].write_text(promotion + "\n")
    return paths[0], paths[1], paths[2], n + len(feedback)


def settings() -> Any:
    from monitor.config import Settings

    return Settings.model_validate({"stats": {"protected_slices": PROTECTED}})


def run_slicewatch(paths: tuple[Path, Path, Path], out: Path, profile: Path | None = None) -> tuple[float, Any]:
    from monitor.app import replay

    cfg = settings()
    prof = cProfile.Profile() if profile else None
    t0 = time.perf_counter()
    if prof:
        prof.enable()
    summary = replay(cfg, paths[0], paths[1], paths[2], out)
    if prof:
        prof.disable()
        prof.dump_stats(profile)
    return time.perf_counter() - t0, summary


EVIDENTLY_SCRIPT = r'''
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
inference, start = sys.argv[1], float(sys.argv[2])
t0 = time.perf_counter()
rows = [json.loads(line) for line in open(inference)]
frame = pd.DataFrame([{**r["input_features"], "output": r["output"], "confidence": r["confidence"],
                       "_hour": int((pd.Timestamp(r["served_at"]).timestamp() - start) // 3600)} for r in rows])
frame["has_attachment"] = frame["has_attachment"].astype(str)
ref = frame[frame["_hour"] == 0].drop(columns="_hour")
drifted = []
for h in range(1, int(frame["_hour"].max()) + 1):
    cur = frame[frame["_hour"] == h].drop(columns="_hour")
    if cur.empty:
        continue
    n = 0
    for m in Report([DataDriftPreset()]).run(cur, ref).dict()["metrics"]:
        if m["metric_name"].startswith("DriftedColumnsCount"):
            n = int(m["value"]["count"])
    drifted.append(n)
print(json.dumps({"seconds": time.perf_counter() - t0, "reports": len(drifted), "drifted_columns": drifted}))
'''


def run_evidently(inference: Path, work: Path) -> dict[str, Any] | None:
    """Hourly ``DataDriftPreset`` reports of the features and output against the first hour (its
    usual batch use), in the peer environment; the script times itself from reading the file."""
    from benchmarks.peers_env import PeerRun

    script = work / "evidently_replay.py"
    script.write_text(EVIDENTLY_SCRIPT)
    return PeerRun("evidently", script, [str(inference), str(START)]).result()


SPLIT = (
    # (label, module, class or None, function): the parts of a replay interval, timed wall-clock
    ("store write", "monitor.store.repository", "Repository", "write"),
    ("  inference rows", "monitor.store.writes", None, "_write_inferences"),
    ("  feedback (label join)", "monitor.store.label_join", None, "_write_feedback"),
    ("  waiting labels applied", "monitor.store.label_join", None, "_apply_pending"),
    ("  label log", "monitor.store.label_join", None, "log_label_changes"),
    ("observe", "monitor.drift.engine", "DriftEngine", "observe"),
    ("  window.observe", "monitor.stats.window", "ModelWindow", "observe"),
    ("rollback-target reads", "monitor.pipeline", "Pipeline", "load_targets"),
    ("pipeline.evaluate", "monitor.pipeline", "Pipeline", "evaluate"),
    ("  engine.evaluate", "monitor.drift.engine", "DriftEngine", "evaluate"),
    ("    distribution statistics", "monitor.drift.signals", None, "block_statistics"),
    ("    p-value correction", "monitor.drift.engine", None, "_adjusted"),
    ("  alert evaluator", "monitor.alerts.state", "AlertEvaluator", "evaluate"),
    ("  metrics view", "monitor.metrics.collector", "MonitorCollector", "update"),
)


def install_split(setter: Any = setattr) -> dict[str, list[float]]:
    """Wrap each part of :data:`SPLIT` with a wall-clock timer (``setter``: how, e.g. a test's
    ``monkeypatch.setattr``); returns label -> [seconds, calls]."""
    import functools
    import importlib

    acc: dict[str, list[float]] = {label: [0.0, 0] for label, *_ in SPLIT}
    for label, module, owner, name in SPLIT:
        target = importlib.import_module(module)
        holder = getattr(target, owner) if owner else target
        real = getattr(holder, name)

        def timed(*a: Any, _real: Any = real, _cell: list[float] = acc[label], **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return _real(*a, **kw)
            finally:
                _cell[0] += time.perf_counter() - t
                _cell[1] += 1

        setter(holder, name, functools.wraps(real)(timed))
    return acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, default=12.0)
    ap.add_argument("--rate", type=float, default=200.0, help="inferences per minute")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-evidently", action="store_true")
    ap.add_argument("--write-dir", type=Path, default=None, help="keep the stream and the drift events here")
    ap.add_argument("--profile", type=Path, default=None, help="cProfile the first repetition into this file")
    ap.add_argument("--split", action="store_true",
                    help="time the parts of each interval (store, observe, evaluation, alerts) and print "
                         "them in ms per evaluation (wrappers add a little time)")
    ap.add_argument("--gc-gen0-threshold", type=int, default=settings().ingest.gc_gen0_threshold,
                    help="as `slicewatch replay` sets it (ingest.gc_gen0_threshold; 0: Python's defaults)")
    args = ap.parse_args()
    from monitor.app import tune_gc

    tune_gc(args.gc_gen0_threshold)  # as `slicewatch replay` does
    split = install_split() if args.split else None
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        d = args.write_dir or Path(tmp)
        d.mkdir(parents=True, exist_ok=True)
        *paths, events = write_stream(d, args.hours, args.rate)
        files = (paths[0], paths[1], paths[2])
        print(f"stream: {events:,} events ({args.hours:g} h at {args.rate:g}/min, half labelled)")
        ours, theirs = [], []
        drift_events = 0
        for r in range(args.repeat):
            took, summary = run_slicewatch(files, d / "drift.jsonl", args.profile if r == 0 else None)
            ours.append(took)
            drift_events = len(summary.drift_events)
            line = f"run {r + 1}: slicewatch replay {took:.1f} s ({events / took:,.0f} events/s, " \
                   f"{summary.evaluations} evaluations, {drift_events} drift events)"
            if not args.no_evidently:
                answer = run_evidently(files[0], d)
                if answer is not None:
                    e_took = float(answer["seconds"])
                    theirs.append(e_took)
                    line += (f"; Evidently hourly {e_took:.1f} s ({answer['reports']} reports, "
                             f"{args.rate * 60 * args.hours / e_took:,.0f} inferences/s)")
            print(line, flush=True)
            if split is not None:
                n = summary.evaluations
                print(f"  where an interval's {took / n * 1000:.2f} ms went (ms per evaluation, mean):")
                for label, (seconds, calls) in split.items():
                    print(f"    {label:30s} {seconds / n * 1000:6.2f}  ({int(calls)} calls)")
                    split[label] = [0.0, 0]
        med = statistics.median(ours)
        print(f"median: slicewatch {med:.1f} s = {events / med:,.0f} events/s")
        if theirs:
            e_med = statistics.median(theirs)
            print(f"median: Evidently hourly {e_med:.1f} s; slicewatch / Evidently time = {med / e_med:.2f}")
        if args.profile:
            pstats.Stats(str(args.profile)).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
