"""Storage sizing: bytes per stored event in ``inference_log`` (PostgreSQL and SQLite), for the
demo's traffic and for a 40-feature LLM-style event, and what a month costs at a given rate.

For each workload: a fresh database at the monitor's schema (on PostgreSQL the day's partition of
``inference_log`` made, as the running monitor makes it), N events written through the monitor's
own write path (``Repository.write``, batches of 5,000, with their Kafka origins) and the labels of
the labelled share joined (updates leave dead tuples: ``VACUUM`` runs before measuring, as
autovacuum would). Measured: heap + TOAST and index bytes of every partition, the
``inference_request`` key table, ``pending_label``/``label_change``; the SQLite file size.

    .venv/bin/python -m benchmarks.sizing --events 100000

Prints a Markdown table (recorded in ``docs/sizing.md``).
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import msgspec
from sqlalchemy import Engine, text

from benchmarks.servers import fresh_database
from monitor.demo.traffic import TrafficGenerator
from monitor.embedded.postgres import PostgresServer
from monitor.events import FeedbackEvent, InferenceEvent
from monitor.records import Origin
from monitor.store.engine import make_engine
from monitor.store.migrate import upgrade
from monitor.store.repository import Repository

START = 1_780_000_000.0  # 2026-05-28
BATCH = 5000
MONTH_S = 30 * 86400
RATES = (100, 1_000, 10_000)


def demo_events(n: int) -> Iterator[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """The demo's traffic (three models, lineage, judge and human labels), one minute per step."""
    gen = TrafficGenerator(seed=7, start=START, events_per_s=BATCH / 60.0)
    made = 0
    while made < n:
        step = gen.step(60.0)
        inferences = step.inferences[: n - made]
        made += len(inferences)
        yield inferences, step.feedback


def llm_events(n: int) -> Iterator[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """A 40-feature LLM-style event: 24 numeric and 16 categorical features, a 300-character
    generated output, 3 slice attributes, full lineage, tokens; half of them labelled by a judge."""
    rng = random.Random(3)
    words = ["refund", "invoice", "account", "delivery", "policy", "upgrade", "error", "thanks", "order", "plan"]
    cats = {f"cat_{j}": [f"v{k}" for k in range(3 + j)] for j in range(16)}
    for first in range(0, n, BATCH):
        inf, fb = [], []
        for i in range(first, min(n, first + BATCH)):
            at = START + i * 0.02
            features: dict[str, Any] = {f"num_{j}": round(rng.gauss(j, 1 + j / 10), 4) for j in range(24)}
            features.update({k: rng.choice(v) for k, v in cats.items()})
            rid = f"req-{i:010d}-{rng.getrandbits(48):012x}"
            inf.append({
                "schema_version": 1, "request_id": rid, "model_id": "support-llm@lora-17",
                "served_at": datetime.fromtimestamp(at, tz=UTC).isoformat(),
                "input_features": features,
                "output": " ".join(rng.choice(words) for _ in range(45))[:300],
                "confidence": round(rng.random(), 4),
                "slice": {"language": rng.choice(["en", "es", "ja"]), "domain": rng.choice(["billing", "support"]),
                          "tier": rng.choice(["free", "pro"])},
                "lineage": {"prompt_template_sha": "9f2c" * 10, "preprocessing_ref": "pre@2026-11-02",
                            "retrieval_index_ref": "idx@2026-11-30", "embedding_model": "e5-large-v2",
                            "dataset_version": "ds-2026-11"},
                "latency_ms": round(rng.lognormvariate(6, 0.5), 1), "tokens_in": rng.randint(200, 4000),
                "tokens_out": rng.randint(20, 400),
            })
            if i % 2 == 0:
                fb.append({"schema_version": 1, "request_id": rid,
                           "observed_at": datetime.fromtimestamp(at + 120, tz=UTC).isoformat(),
                           "was_correct": rng.random() < 0.9, "score": round(rng.random(), 3), "source": "judge",
                           "judge_model": "judge@v3", "rubric_version": "r12"})
        yield inf, fb


def fill(engine: Engine, batches: Iterator[tuple[list[dict[str, Any]], list[dict[str, Any]]]]) -> tuple[int, int]:
    """Write every batch through the monitor's write path; (events, wire bytes of the inference events)."""
    repo = Repository(engine)
    events = wire = offset = 0
    for inferences, feedback in batches:
        decoded = []
        for d in inferences:
            raw = msgspec.json.encode(d)
            wire += len(raw)
            decoded.append((msgspec.json.decode(raw, type=InferenceEvent), Origin("inference-events", 0, offset)))
            offset += 1
        labels = [msgspec.convert(f, FeedbackEvent) for f in feedback]
        repo.write(decoded, labels, ingested_at=START)
        events += len(decoded)
    return events, wire


def pg_sizes(engine: Engine, vacuum: str = "VACUUM ANALYZE") -> dict[str, int]:
    """Heap (+ TOAST) and index bytes of inference_log's partitions, and of the other row tables."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(vacuum))
    with engine.connect() as conn:
        parts = conn.execute(text(
            "SELECT coalesce(sum(pg_table_size(i.inhrelid)), 0), coalesce(sum(pg_indexes_size(i.inhrelid)), 0) "
            "FROM pg_inherits i WHERE i.inhparent = 'inference_log'::regclass"
        )).one()
        out = {"log_table": int(parts[0]), "log_indexes": int(parts[1])}
        for name in ("inference_request", "pending_label", "label_change"):
            row = conn.execute(text(f"SELECT pg_table_size('{name}'), pg_indexes_size('{name}')")).one()
            out[f"{name}_table"], out[f"{name}_indexes"] = int(row[0]), int(row[1])
    return out


def measure_pg(server: PostgresServer, workload: str, n: int) -> dict[str, Any]:
    engine = make_engine(fresh_database(server, START, days=2, prefix="size"))
    try:
        events, wire = fill(engine, (demo_events if workload == "demo" else llm_events)(n))
        sizes = pg_sizes(engine)
        full = pg_sizes(engine, "VACUUM FULL")  # the label updates' free space given back
        compact = full["log_table"] + full["log_indexes"] + full["inference_request_table"] \
            + full["inference_request_indexes"]
        return {"events": events, "wire": wire, **sizes, "compact": compact}
    finally:
        engine.dispose()


def measure_sqlite(workload: str, n: int) -> dict[str, Any]:
    with TemporaryDirectory() as tmp:
        path = Path(tmp) / "size.db"
        url = f"sqlite:///{path}"
        upgrade(url)
        engine = make_engine(url)
        try:
            events, wire = fill(engine, (demo_events if workload == "demo" else llm_events)(n))
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM"))
        finally:
            engine.dispose()
        return {"events": events, "wire": wire, "file": path.stat().st_size}


def gib(b: float) -> str:
    return f"{b / 2**30:,.1f} GiB" if b >= 2**30 else f"{b / 2**20:,.0f} MiB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--events", type=int, default=100_000)
    args = ap.parse_args()
    server = PostgresServer().start()
    rows = []
    try:
        for workload in ("demo", "llm40"):
            pg = measure_pg(server, workload, args.events)
            lite = measure_sqlite(workload, args.events)
            n = pg["events"]
            per_event = {
                "wire": pg["wire"] / n,
                "heap": pg["log_table"] / n,
                "index": pg["log_indexes"] / n,
                "key": (pg["inference_request_table"] + pg["inference_request_indexes"]) / n,
                "labels": sum(pg[f"{t}_{k}"] for t in ("pending_label", "label_change")
                              for k in ("table", "indexes")) / n,
                "sqlite": lite["file"] / lite["events"],
            }
            # the label log is pruned after two windows (takeover): not part of the size per event kept
            per_event["pg"] = per_event["heap"] + per_event["index"] + per_event["key"]
            per_event["compact"] = pg["compact"] / n
            rows.append((workload, n, per_event))
    finally:
        server.destroy()
    print(f"{args.events:,} events per workload; bytes per stored event (PostgreSQL after VACUUM ANALYZE):\n")
    print("| workload | JSON on the wire | inference_log heap+TOAST | its indexes | inference_request | "
          "label log (pruned after 2 h) | PostgreSQL kept | after VACUUM FULL | SQLite file |")
    print("|---|---|---|---|---|---|---|---|---|")
    for workload, _, p in rows:
        print(f"| {workload} | {p['wire']:,.0f} B | {p['heap']:,.0f} B | {p['index']:,.0f} B | {p['key']:,.0f} B | "
              f"{p['labels']:,.0f} B | **{p['pg']:,.0f} B** | {p['compact']:,.0f} B | {p['sqlite']:,.0f} B |")
    print("\nPer million events and per 30 days at a steady rate (PostgreSQL total; with "
          "`retention.inference_log_days: 30` this is also the steady-state size):\n")
    print("| workload | per 10^6 events | " + " | ".join(f"30 days at {r:,} ev/s" for r in RATES) + " |")
    print("|---|---|" + "---|" * len(RATES))
    for workload, _, p in rows:
        month = " | ".join(gib(p["pg"] * r * MONTH_S) for r in RATES)
        print(f"| {workload} | {gib(p['pg'] * 1e6)} | {month} |")


if __name__ == "__main__":
    main()
