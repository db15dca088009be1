"""Ingestion throughput: Kafka -> PostgreSQL end to end vs the raw kafka-python consume rate.

Produces N realistic inference events to a fresh Tansu broker, then, in the same run and on the
same records, measures (a) a bare kafka-python consumer reading every record (the ceiling) and
(b) IngestConsumer decoding, writing to a fresh PostgreSQL database and committing offsets.
Repeated ``--repeat`` times; prints medians and the ratio (target >= 0.80).

    .venv/bin/python -m benchmarks.ingest --events 200000 --repeat 3

As issue 12 asks, PostgreSQL is pinned to one core and this process (the consumer and the raw
consume) to the other, with the broker (``--no-pin`` turns that off; one core: nothing is pinned).
Beside the rates it prints CPU time per event: this process's for (a) and (b), PostgreSQL's and the
broker's. Timing of (b) starts when the group assignment arrives (the join handshake, ~3 s on
Tansu, is not throughput) and ends when the last row is committed to PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client import CollectorRegistry

from benchmarks.servers import fresh_database, pin, tree_cpu_seconds
from monitor.app import tune_gc
from monitor.config import IngestSettings
from monitor.embedded.postgres import PostgresServer
from monitor.embedded.tansu import TansuBroker
from monitor.ingest.consumer import IngestConsumer
from monitor.ingest.metrics import ConsumerMetrics
from monitor.ingest.topics import ensure_topics
from monitor.store.engine import make_engine
from monitor.store.repository import Repository

TOPIC, FEEDBACK, PROMOTIONS = "bench-inference", "bench-feedback", "bench-promotions"
PARTITIONS = 3
START = 1_763_000_000.0  # served_at of the first event (2025-11-13); 200,000 events span 34 min


def events(n: int, seed: int = 1) -> list[tuple[bytes, bytes]]:
    rng = random.Random(seed)
    models = ["fraud-clf@2026-10-01", "fraud-clf@2026-11-02", "support-llm@lora-17"]
    start = START
    out = []
    for i in range(n):
        model = models[i % 3]
        ev = {
            "schema_version": 1,
            "request_id": f"req-{i:09d}-{rng.getrandbits(32):08x}",
            "model_id": model,
            "served_at": datetime.fromtimestamp(start + i * 0.01, tz=UTC).isoformat(),
            "input_features": {
                "amount": round(rng.lognormvariate(3, 1), 2),
                "account_age_days": rng.randint(0, 4000),
                "country": rng.choice(["de", "fr", "us", "br", "in", "jp"]),
                "channel": rng.choice(["web", "ios", "android"]),
                "is_returning": rng.random() < 0.6,
                "n_items": rng.randint(1, 12),
                "risk_score_v2": round(rng.random(), 4),
                "merchant_category": rng.choice(["grocery", "travel", "electronics", "fashion"]),
            },
            "output": rng.choice(["approve", "review", "decline"]),
            "confidence": round(rng.random(), 4),
            "slice": {"tier": rng.choice(["free", "pro", "enterprise"]), "region": rng.choice(["eu", "us", "apac"])},
            "lineage": {"prompt_template_sha": "9f2c1e7", "dataset_version": "2026-10"},
            "latency_ms": round(rng.uniform(5, 80), 1),
            "tokens_in": rng.randint(20, 400),
            "tokens_out": rng.randint(1, 50),
        }
        out.append((model.encode(), json.dumps(ev).encode()))
    return out


def produce(bootstrap: str, records: list[tuple[bytes, bytes]]) -> float:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20, batch_size=512 * 1024)
    t0 = time.perf_counter()
    for key, value in records:
        producer.send(TOPIC, key=key, value=value)
    producer.flush(timeout=600)
    elapsed = time.perf_counter() - t0
    producer.close()
    return elapsed


@dataclass
class Servers:
    broker: TansuBroker
    pg: PostgresServer

    def cpu(self) -> tuple[float, float, float]:
        """CPU seconds so far: this process, PostgreSQL's processes, the broker's."""
        assert self.pg._proc is not None and self.broker._proc is not None
        return time.process_time(), tree_cpu_seconds(self.pg._proc.pid), tree_cpu_seconds(self.broker._proc.pid)


@dataclass
class Run:
    rate: float  # events/s
    cpu_us: tuple[float, float, float]  # per event: this process, PostgreSQL, the broker


def measured(servers: Servers, n: int, fn: Callable[[], float]) -> Run:
    before = servers.cpu()
    rate = fn()
    after = servers.cpu()
    us = tuple((a - b) / n * 1e6 for a, b in zip(after, before, strict=True))
    return Run(rate, (us[0], us[1], us[2]))


def raw_consume(bootstrap: str, n: int) -> float:
    """Events/s of a bare kafka-python consumer reading all partitions from the beginning."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             max_poll_records=5000)
    tps = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    seen = 0
    t0 = time.perf_counter()
    while seen < n:
        for recs in consumer.poll(timeout_ms=1000).values():
            seen += len(recs)
    elapsed = time.perf_counter() - t0
    consumer.close()
    return n / elapsed


def end_to_end(bootstrap: str, pg: PostgresServer, n: int) -> float:
    """Events/s from Kafka into a fresh PostgreSQL database through IngestConsumer."""
    engine = make_engine(fresh_database(pg, START))
    registry = CollectorRegistry()
    assigned = threading.Event()
    started: list[float] = []

    def on_assigned(tps: set[TopicPartition]) -> None:
        if tps and not started:
            started.append(time.perf_counter())
            assigned.set()

    consumer = IngestConsumer(
        bootstrap_servers=bootstrap, group_id=f"bench-{uuid.uuid4().hex[:6]}", inference_topic=TOPIC,
        feedback_topic=FEEDBACK, promotions_topic=PROMOTIONS, repository=Repository(engine),
        metrics=ConsumerMetrics(registry), max_poll_records=5000, poll_timeout_ms=200,
        session_timeout_ms=6000, heartbeat_interval_ms=1000, on_assigned=on_assigned,
    )
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    while True:
        written = registry.get_sample_value("slicewatch_events_written_total", {"topic": TOPIC}) or 0
        if written >= n:
            break
        time.sleep(0.02)
    elapsed = time.perf_counter() - started[0]
    stop.set()
    thread.join(15)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT count(*) FROM inference_log").scalar_one()
    engine.dispose()
    assert rows == n, f"expected {n} rows, found {rows}"
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-pin", action="store_true", help="leave every process on every core")
    parser.add_argument("--gc-gen0-threshold", type=int, default=IngestSettings().gc_gen0_threshold,
                        help="as `slicewatch run` sets it (ingest.gc_gen0_threshold; 0: Python's defaults)")
    args = parser.parse_args()
    records = events(args.events)
    tune_gc(args.gc_gen0_threshold)
    with TansuBroker() as broker, PostgresServer() as pg:
        ensure_topics(broker.bootstrap_servers, [TOPIC, FEEDBACK, PROMOTIONS], partitions=PARTITIONS)
        ensure_topics(broker.bootstrap_servers, [f"{t}.dlq" for t in (TOPIC, FEEDBACK, PROMOTIONS)])
        took = produce(broker.bootstrap_servers, records)
        size = sum(len(v) for _, v in records) / len(records)
        print(f"produced {args.events} events ({size:.0f} B avg) in {took:.1f} s")
        servers = Servers(broker, pg)
        cores = sorted(os.sched_getaffinity(0))
        if not args.no_pin and len(cores) >= 2:
            assert pg._proc is not None and broker._proc is not None
            pin(pg._proc.pid, cores[:1])
            pin(broker._proc.pid, cores[1:2])
            pin(os.getpid(), cores[1:2])
            print(f"pinned: PostgreSQL to core {cores[0]}; the broker and this process to core {cores[1]}")
        raw_runs, e2e_runs = [], []
        for i in range(args.repeat):
            raw_runs.append(measured(servers, args.events, lambda: raw_consume(broker.bootstrap_servers, args.events)))
            e2e_runs.append(
                measured(servers, args.events, lambda: end_to_end(broker.bootstrap_servers, pg, args.events)))
            raw, e2e = raw_runs[-1], e2e_runs[-1]
            print(f"run {i + 1}: raw consume {raw.rate:,.0f} ev/s   end to end {e2e.rate:,.0f} ev/s   "
                  f"ratio {e2e.rate / raw.rate:.2f}")
            print(f"       CPU us/event   raw: this process {raw.cpu_us[0]:.1f}, broker {raw.cpu_us[2]:.1f}   "
                  f"end to end: this process {e2e.cpu_us[0]:.1f}, PostgreSQL {e2e.cpu_us[1]:.1f}, "
                  f"broker {e2e.cpu_us[2]:.1f}")
        raw_m = statistics.median(r.rate for r in raw_runs)
        e2e_m = statistics.median(r.rate for r in e2e_runs)
        print(f"median raw kafka-python consume: {raw_m:,.0f} events/s "
              f"({statistics.median(r.cpu_us[0] for r in raw_runs):.1f} us CPU per event)")
        print(f"median end to end Kafka -> PostgreSQL: {e2e_m:,.0f} events/s "
              f"(consumer {statistics.median(r.cpu_us[0] for r in e2e_runs):.1f} us, "
              f"PostgreSQL {statistics.median(r.cpu_us[1] for r in e2e_runs):.1f} us CPU per event)")
        print(f"ratio end to end / raw: {e2e_m / raw_m:.2f} (target >= 0.80)")


if __name__ == "__main__":
    main()
