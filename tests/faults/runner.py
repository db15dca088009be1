"""Run one IngestConsumer in its own process for the fault suite (an extended ``tests.ingest_runner``).

    python -m tests.faults.runner BOOTSTRAP TOPIC_PREFIX DATABASE_URL GROUP_ID
        [--max-poll-records N] [--session-timeout-ms MS] [--heartbeat-interval-ms MS]
        [--client-id ID] [--assignment-file PATH] [--hold]

Prints ``ready`` once the consumer is built (just before ``run``), ``stopped`` after a clean stop.
With ``--hold`` it imports everything, prints ``loaded`` and waits for a line on stdin before it
builds the consumer, so a test can make a member join at a precise moment without paying for the
interpreter start then. SIGTERM sets the stop event, as the real CLI does; exit code 0 after a clean
stop. Warnings (rebalances, stalls, retries) go to stderr with a timestamp; payloads are never logged.
``--assignment-file``: see :class:`AssignmentReport`.
SIGUSR1 dumps every thread's stack to stderr (the suite does that before it SIGKILLs a member that
ignored SIGTERM).
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable

from kafka.structs import TopicPartition
from prometheus_client import CollectorRegistry

from monitor.ingest.consumer import IngestConsumer
from monitor.store.engine import make_engine
from monitor.store.repository import Repository
from tests.ingest_fixtures import FAST_GROUP, Topics, make_ingest_consumer


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="tests.faults.runner")
    p.add_argument("bootstrap")
    p.add_argument("prefix")
    p.add_argument("url")
    p.add_argument("group")
    p.add_argument("--max-poll-records", type=int, default=500)
    p.add_argument("--session-timeout-ms", type=int, default=FAST_GROUP["session_timeout_ms"])
    p.add_argument("--heartbeat-interval-ms", type=int, default=FAST_GROUP["heartbeat_interval_ms"])
    p.add_argument("--client-id", default="slicewatch")
    p.add_argument("--assignment-file", help="write the held inference partitions here after each rebalance")
    p.add_argument("--hold", action="store_true", help="wait for a line on stdin before building the consumer")
    return p.parse_args(argv)


class AssignmentReport:
    """Writes ``{"client": [...], "hook": [...]}`` to ``path``: the inference partitions the Kafka
    client holds (read every 0.2 s on a thread of its own, so it moves even while the consuming
    thread is blocked) and those of the last ``on_assigned`` call (where the monitor rebuilds its
    statistics, after the consuming thread handled the rebalance)."""

    def __init__(self, path: str, topic: str) -> None:
        self.path, self.topic = path, topic
        self.hook: list[int] | None = None
        self.consumer: IngestConsumer | None = None
        self._lock = threading.Lock()

    def _partitions(self, tps: Iterable[TopicPartition]) -> list[int]:
        return sorted(tp.partition for tp in tps if tp.topic == self.topic)

    def on_assigned(self, assigned: set[TopicPartition]) -> None:
        self.hook = self._partitions(assigned)
        self.write()

    def write(self) -> None:
        client = getattr(self.consumer, "_consumer", None)  # the IngestConsumer's KafkaConsumer, if any
        try:
            held = self._partitions(client.assignment()) if client is not None else []
        except Exception:  # closing or recreating the client
            held = []
        with self._lock:
            tmp = f"{self.path}.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump({"client": held, "hook": self.hook}, f)
            os.replace(tmp, self.path)

    def watch(self) -> None:
        def loop() -> None:
            while True:
                self.write()
                time.sleep(0.2)

        threading.Thread(target=loop, name="fault-assignment", daemon=True).start()


def main(argv: list[str]) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format=f"%(asctime)s {args.client_id} %(levelname)s %(name)s: %(message)s")
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # the suite dumps a hung member's stacks
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if args.hold:
        print("loaded", flush=True)
        if not sys.stdin.readline() or stop.is_set():
            return 0
    engine = make_engine(args.url)
    topics = Topics.with_prefix(args.prefix)
    report = AssignmentReport(args.assignment_file, topics.inference) if args.assignment_file else None
    consumer = make_ingest_consumer(
        args.bootstrap, topics, Repository(engine), CollectorRegistry(), args.group,
        max_poll_records=args.max_poll_records, session_timeout_ms=args.session_timeout_ms,
        heartbeat_interval_ms=args.heartbeat_interval_ms, client_id=args.client_id,
        on_assigned=report.on_assigned if report is not None else None,
    )
    if report is not None:
        report.consumer = consumer
        report.watch()
    print("ready", flush=True)
    consumer.run(stop)
    engine.dispose()
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
