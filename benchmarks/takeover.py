"""Takeover: how long a replica needs to rebuild the window state of the partitions it is assigned.

Writes ``--rows`` inference rows (a one-hour window, three models, with labels on half of them)
into a fresh PostgreSQL database, then, in the same run and on the same rows, measures
(a) the baseline: reading the window's rows out of PostgreSQL in chunks, as the rebuild does, and
doing nothing with them, and (b) the rebuild itself (``Monitor.rebuild``'s work: the same chunked
read, then ``DriftEngine.replay`` of every chunk). Repeated ``--repeat`` times; prints medians,
rows/s, the ratio (b)/(a) and the extrapolation to a one-hour window at 10,000 events/s
(36 million rows). Peak RSS is measured over the rebuild alone (``/proc/self/clear_refs``).

    .venv/bin/python -m benchmarks.takeover --rows 300000 --repeat 3
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

from monitor.embedded.postgres import PostgresServer
from monitor.events import InferenceEvent
from monitor.stats.engine import DriftEngine
from monitor.store.base import metadata
from monitor.store.engine import make_engine
from monitor.store.repository import Repository
from monitor.store.rows import Origin

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
        engine = make_engine(server.url)
        metadata.create_all(engine)
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

        def rebuild() -> tuple[float, float]:
            eng = DriftEngine(auto_reference_events=5000, protected_slices={"tier": ["enterprise"]})
            for p in profiles:
                eng.set_reference(p.model_id, p)
            _peak_rss_reset()
            t = time.perf_counter()
            eng.reset_models(MODELS)
            for chunk in repo.iter_window_rows(MODELS, [0], start - 1, start + HOUR + 1):
                eng.replay(chunk, start + HOUR - 1)
            took = time.perf_counter() - t
            snap = eng.evaluate(start + HOUR - 1)
            counted = sum(v.sample_count for v in snap.values if v.statistic == "psi" and v.slice == "all"
                          and v.signal == "output" and v.feature == "output")
            assert counted == args.rows, (counted, args.rows, eng.late_events_total)
            return took, _peak_rss_mib()

        base, full, rss = [], [], []
        for _ in range(args.repeat):
            base.append(read_only())
            took, peak = rebuild()
            full.append(took)
            rss.append(peak)
        b, f = statistics.median(base), statistics.median(full)
        print(f"read only (baseline): median {b:.2f} s, {args.rows / b:,.0f} rows/s")
        print(f"rebuild:              median {f:.2f} s, {args.rows / f:,.0f} rows/s, peak RSS {max(rss):.0f} MiB")
        print(f"ratio rebuild / read-only: {f / b:.2f}")
        print(f"one-hour window at 10,000 events/s (36,000,000 rows): ~{36e6 / (args.rows / f) / 60:.1f} min")
    finally:
        server.destroy()


if __name__ == "__main__":
    main()
