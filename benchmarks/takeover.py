"""Takeover: how long a replica needs to take over the window state of the partitions it is assigned.

Writes ``--rows`` inference rows (a one-hour window, three models) into a fresh PostgreSQL database,
then, in the same run and on the same rows, measures
(a) the baseline: reading the window's rows out of PostgreSQL in chunks, as the rebuild does, and
doing nothing with them;
(b) the full rebuild (``Takeover.restore`` without a checkpoint: the same chunked read, then
``DriftEngine.replay`` of every chunk);
(c) the takeover from a checkpoint taken one minute before the end (the default
``stats.checkpoint_every_s`` is 60 s, so a takeover finds one at most that old): load it, replay the
last minute's rows and apply the label changes logged after it (labels for 10 % of the rows the
checkpoint holds, written after it).
Repeated ``--repeat`` times; prints medians, rows/s, the ratios (b)/(a) and (b)/(c), and the
extrapolation to a one-hour window at 10,000 events/s (36 million rows). Peak RSS is measured over
(b) alone (``/proc/self/clear_refs``).

    .venv/bin/python -m benchmarks.takeover --rows 300000 --repeat 3
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from monitor.alerts.state import AlertEvaluator
from monitor.drift.engine import DriftEngine
from monitor.embedded.postgres import PostgresServer
from monitor.events import FeedbackEvent, InferenceEvent
from monitor.pipeline import Pipeline
from monitor.records import Origin
from monitor.store.engine import make_engine
from monitor.store.migrate import upgrade
from monitor.store.repository import Repository
from monitor.store.window_state import WindowStateStore
from monitor.takeover import Takeover

MODELS = ["fraud-clf@2026-10-01", "fraud-clf@2026-11-02", "support-llm@lora-17"]
HOUR = 3600.0


def _event(i: int, rng: random.Random, start: float, n: int) -> InferenceEvent:
    return InferenceEvent(
        schema_version=1,
        request_id=f"req-{i:09d}",
        model_id=MODELS[i % 3],
        served_at=datetime.fromtimestamp(start + HOUR * i / n, tz=UTC),
        input_features={
            "amount": round(rng.lognormvariate(3, 1), 2),
            "country": rng.choice(["de", "fr", "us", "br", "in", "jp"]),
            "is_returning": rng.random() < 0.6,
            "risk_score_v2": round(rng.random(), 4),
        },
        output=rng.choice(["approve", "review", "decline"]),
        confidence=round(rng.random(), 4),
        slice={"tier": rng.choice(["free", "pro", "enterprise"])},
        tokens_in=rng.randint(20, 400),
    )


def _peak_rss_reset() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=300_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    server = PostgresServer().start()
    try:
        upgrade(server.url)  # the monitor's schema (inference_log partitioned by day on PostgreSQL)
        engine = make_engine(server.url)
        repo = Repository(engine)
        rng = random.Random(1)
        now = 1_800_000_000.0
        start = now - HOUR + 60.0  # the rows fill the 60 one-minute buckets of the window ending at now
        events = [_event(i, rng, start, args.rows) for i in range(args.rows)]
        t0 = time.perf_counter()
        for k in range(0, args.rows, 20_000):
            chunk = events[k : k + 20_000]
            ingested = chunk[-1].served_at.timestamp() + 1.0  # as if ingested live, a second after
            repo.write([(e, Origin("inference", 0, k + j)) for j, e in enumerate(chunk)], [], [], [], ingested)
        print(f"wrote {args.rows} rows in {time.perf_counter() - t0:.1f} s")
        # references from the first 5,000 rows of each model, as the automatic profile would
        profiler = DriftEngine(auto_reference_events=5000, protected_slices={"tier": ["enterprise"]})
        profiler.observe(events[:20_000], [], now)
        profiles = profiler.new_references()

        def read_only() -> float:
            t = time.perf_counter()
            n = sum(len(c) for c in repo.iter_window_rows(MODELS, [0], start - 1, start + HOUR + 1))
            assert n == args.rows
            return time.perf_counter() - t

        store = WindowStateStore(engine)
        slices = {"tier": ["enterprise"]}

        class NoCheckpoints(WindowStateStore):
            def load_checkpoints(self, *a: Any, **kw: Any) -> dict[str, Any]:
                return {}

        def replica(checkpoints: bool = True) -> tuple[DriftEngine, Pipeline, Takeover]:
            eng = DriftEngine(auto_reference_events=5000, protected_slices=slices)
            for p in profiles:
                eng.set_reference(p.model_id, p)
            pipe = Pipeline(engine=eng, evaluator=AlertEvaluator({}), db=None, evaluate_every_s=15.0,
                            label_seq=store.newest_label_seq())
            tk = Takeover(engine=eng, pipeline=pipe, repository=repo,
                          store=store if checkpoints else NoCheckpoints(engine), bucket_seconds=60,
                          window_buckets=60)
            return eng, pipe, tk

        def restore(eng: DriftEngine, pipe: Pipeline, tk: Takeover) -> tuple[float, Any]:
            t = time.perf_counter()
            with pipe.feed_lock, pipe.lock:
                took = tk.restore(MODELS, [0], end)
            elapsed = time.perf_counter() - t
            snap = eng.evaluate(end)
            counted = sum(v.sample_count for v in snap.values if v.statistic == "psi" and v.slice == "all"
                          and v.signal == "output" and v.feature == "output")
            assert counted == args.rows, (counted, args.rows, eng.late_events_total)
            return elapsed, took

        def rebuild() -> tuple[float, float]:
            eng, pipe, tk = replica(checkpoints=False)
            _peak_rss_reset()
            took, stats = restore(eng, pipe, tk)
            assert stats.from_checkpoint == 0
            return took, _peak_rss_mib()

        # the checkpoint: the state of every row but the last minute's, as a live replica held it
        end = start + HOUR - 1
        cut = args.rows - args.rows // 60
        eng, pipe, tk = replica()
        for chunk in repo.iter_window_rows(MODELS, [0], start - 1, start + HOUR + 1):
            eng.replay([r for r in chunk if r["request_id"] < f"req-{cut:09d}"], end)
        pipe.positions = {0: cut}
        tk.checkpoint(end - 60)
        labels = [msgspec.convert({"schema_version": 1, "request_id": f"req-{i:09d}", "observed_at":
                                   datetime.fromtimestamp(end, tz=UTC).isoformat(), "was_correct": i % 7 != 0,
                                   "source": "human"}, FeedbackEvent) for i in range(0, cut, 10)]
        for k in range(0, len(labels), 20_000):
            repo.write([], labels[k : k + 20_000], [], [], end)
        label_changes = store.newest_label_seq()

        def from_checkpoint() -> tuple[float, int, int]:
            took, stats = restore(*replica())
            assert stats.from_checkpoint == len(MODELS), stats
            return took, stats.rows_replayed, stats.label_changes_applied

        base, full, fast, rss = [], [], [], []
        tail = applied = 0
        for _ in range(args.repeat):
            base.append(read_only())
            took, peak = rebuild()
            full.append(took)
            rss.append(peak)
            took, tail, applied = from_checkpoint()
            fast.append(took)
        b, f, c = statistics.median(base), statistics.median(full), statistics.median(fast)
        assert applied == label_changes
        print(f"read only (baseline):  median {b:.2f} s, {args.rows / b:,.0f} rows/s")
        print(f"full rebuild:          median {f:.2f} s, {args.rows / f:,.0f} rows/s, peak RSS {max(rss):.0f} MiB")
        print(f"from a checkpoint:     median {c:.2f} s ({tail:,} rows and {applied:,} label changes after it)")
        print(f"ratio rebuild / read-only: {f / b:.2f}; ratio rebuild / checkpoint takeover: {f / c:.1f}")
        rate = args.rows / f
        print(f"one-hour window at 10,000 events/s (36,000,000 rows): full rebuild ~{36e6 / rate / 60:.1f} min; "
              f"from a 60 s old checkpoint ~{c - tail / rate + 600_000 / rate:.0f} s "
              "(600,000 rows after it at the rebuild's rate, plus this run's checkpoint load and label changes)")
    finally:
        server.destroy()


if __name__ == "__main__":
    main()
