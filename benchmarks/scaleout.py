"""Scale-out: one consumer process against three in one group over a 6-partition topic.

Produces N realistic inference events (``benchmarks.ingest.events``) to a 6-partition topic on a
fresh Tansu broker. Then, alternately, 1 and 3 ``IngestConsumer`` processes (each its own Python,
as replicas are) consume it in a fresh group into a fresh database on one embedded PostgreSQL. The
rate is N / (last batch written - first batch written), from the rows' ``ingested_at``, so the
group join (seconds on Tansu) is not counted; the wall time from the start of the processes to the
last row is printed beside it. Medians over ``--repeat``.

    .venv/bin/python -m benchmarks.scaleout --events 200000 --repeat 2

Every process, PostgreSQL and the broker share this machine's cores: on 2 cores the figure says how
much of one process's rate is its own CPU. The takeover of a partition's models by a replica is
measured by ``benchmarks.takeover``.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid

from kafka import KafkaProducer
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from benchmarks.ingest import START, events
from benchmarks.servers import fresh_database
from monitor.app import tune_gc
from monitor.config import IngestSettings
from monitor.embedded.postgres import PostgresServer
from monitor.embedded.tansu import TansuBroker
from monitor.ingest.consumer import IngestConsumer
from monitor.ingest.metrics import ConsumerMetrics
from monitor.ingest.topics import ensure_topics
from monitor.store.engine import make_engine
from monitor.store.repository import Repository

TOPIC, FEEDBACK, PROMOTIONS = "scale-inference", "scale-feedback", "scale-promotions"
PARTITIONS = 6


def worker(bootstrap: str, url: str, group: str) -> None:
    """One replica: consume until SIGTERM."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    engine = make_engine(url)
    consumer = IngestConsumer(
        bootstrap_servers=bootstrap, group_id=group, inference_topic=TOPIC, feedback_topic=FEEDBACK,
        promotions_topic=PROMOTIONS, repository=Repository(engine), metrics=ConsumerMetrics(CollectorRegistry()),
        max_poll_records=5000, poll_timeout_ms=200, session_timeout_ms=10000, heartbeat_interval_ms=1000,
    )
    tune_gc(IngestSettings().gc_gen0_threshold)  # as `slicewatch run` does
    print("ready", flush=True)
    consumer.run(stop)
    engine.dispose()


def run_group(bootstrap: str, pg: PostgresServer, processes: int, n: int) -> tuple[float, float]:
    """(events/s between the first and the last batch written, wall seconds from start to the last row)."""
    url = fresh_database(pg, START, prefix="scale")
    group = f"scale-{uuid.uuid4().hex[:6]}"
    started = time.perf_counter()
    procs = [
        subprocess.Popen([sys.executable, "-m", "benchmarks.scaleout", "--worker", bootstrap, url, group],
                         stdout=subprocess.DEVNULL)
        for _ in range(processes)
    ]
    engine = make_engine(url)
    try:
        while True:
            with engine.connect() as conn:
                rows = conn.execute(text("SELECT count(*) FROM inference_log")).scalar_one()
            if rows >= n:
                break
            if any(p.poll() is not None for p in procs):
                raise RuntimeError("a consumer process died")
            time.sleep(0.5)
        wall = time.perf_counter() - started
        with engine.connect() as conn:
            first, last, rows = conn.execute(
                text("SELECT min(ingested_at), max(ingested_at), count(*) FROM inference_log")
            ).one()
        assert rows == n, f"expected {n} rows, found {rows}"
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=30)
        engine.dispose()
    return n / max((last - first).total_seconds(), 1e-9), wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--worker", nargs=3, metavar=("BOOTSTRAP", "URL", "GROUP"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    records = events(args.events)
    with TansuBroker() as broker, PostgresServer() as pg:
        bootstrap = broker.bootstrap_servers
        ensure_topics(bootstrap, [TOPIC, FEEDBACK, PROMOTIONS], partitions=PARTITIONS)
        ensure_topics(bootstrap, [f"{t}.dlq" for t in (TOPIC, FEEDBACK, PROMOTIONS)])
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20, batch_size=512 * 1024)
        for key, value in records:
            producer.send(TOPIC, key=key, value=value)
        producer.flush(timeout=600)
        producer.close()
        print(f"produced {args.events} events to {PARTITIONS} partitions")
        rates: dict[int, list[float]] = {1: [], 3: []}
        for i in range(args.repeat):
            for procs in (1, 3):
                rate, wall = run_group(bootstrap, pg, procs, args.events)
                rates[procs].append(rate)
                print(f"run {i + 1}: {procs} process(es): {rate:,.0f} ev/s between the first and last write, "
                      f"{wall:.1f} s wall from start")
        one, three = statistics.median(rates[1]), statistics.median(rates[3])
        print(f"median 1 process: {one:,.0f} ev/s; 3 processes: {three:,.0f} ev/s; ratio {three / one:.2f}")


if __name__ == "__main__":
    main()
