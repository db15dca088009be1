"""Run one monitor (what ``slicewatch run`` runs: consumer, statistics, checkpoints, alerts) in its
own process for the fault suite.

    python -m tests.faults.runner BOOTSTRAP TOPIC_PREFIX DATABASE_URL GROUP_ID
        [--max-poll-records N] [--session-timeout-ms MS] [--heartbeat-interval-ms MS]
        [--client-id ID] [--assignment-file PATH] [--hold] [--state-dir DIR]

Prints ``ready`` once the monitor is built (just before ``run``), ``stopped`` after a clean stop.
With ``--hold`` it builds the monitor, prints ``loaded`` and waits for a line on stdin before it
runs it (joins the group), so a test can make a member join at a precise moment without paying for
the interpreter start then. ``--state-dir``: after a clean stop, the window state of every model it
holds goes to ``DIR/<client-id>-<pid>.json`` (see ``harness.assert_windows_match``).
SIGTERM sets the stop event, as the real CLI does; exit code 0 after a clean stop. Warnings
(rebalances, stalls, retries) go to stderr with a timestamp; payloads are never logged.
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
from pathlib import Path

from kafka.structs import TopicPartition

from monitor.app import Monitor, build_monitor, tune_gc
from monitor.ingest.consumer import IngestConsumer
from tests.faults.harness import monitor_settings
from tests.ingest_fixtures import FAST_GROUP


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
    p.add_argument("--hold", action="store_true", help="wait for a line on stdin before running the monitor")
    p.add_argument("--state-dir", help="write the window state here after a clean stop")
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
    stopped_at: list[float] = []  # monotonic time of the SIGTERM: the dump spends what is left of its 10 s

    def on_sigterm(*_: object) -> None:
        stopped_at.append(time.monotonic())
        stop.set()

    signal.signal(signal.SIGTERM, on_sigterm)
    settings = monitor_settings(
        args.bootstrap, args.prefix, args.url, args.group, max_poll_records=args.max_poll_records,
        session_timeout_ms=args.session_timeout_ms, heartbeat_interval_ms=args.heartbeat_interval_ms,
        client_id=args.client_id,
    )
    monitor = build_monitor(settings, serve_metrics=False)  # before --hold: joining is what a case times
    tune_gc(settings.ingest.gc_gen0_threshold)  # as `slicewatch run` does
    if args.hold:
        print("loaded", flush=True)
        if not sys.stdin.readline() or stop.is_set():
            return 0
    inference_topic = settings.kafka.topics.inference
    report = AssignmentReport(args.assignment_file, inference_topic) if args.assignment_file else None
    restored: list[int] = []  # the inference partitions of the last completed takeover

    hook_running = threading.Event()

    def on_assigned(assigned: set[TopicPartition]) -> None:
        hook_running.set()
        monitor.rebuild(assigned)
        restored[:] = sorted(tp.partition for tp in assigned if tp.topic == inference_topic)
        hook_running.clear()
        if report is not None:
            report.on_assigned(assigned)

    monitor.consumer.on_assigned = on_assigned
    if report is not None:
        report.consumer = monitor.consumer
        report.watch()
    print("ready", flush=True)
    monitor.run(stop)
    if args.state_dir:
        # a takeover still due or still running (abandoned at the stop): the state is not of the assignment
        if monitor.consumer._takeover_pending() or hook_running.is_set():
            print(f"{args.client_id}: no window-state dump (takeover not done)", file=sys.stderr, flush=True)
        elif not dump_state(monitor, restored, Path(args.state_dir) / f"{args.client_id}-{os.getpid()}.json",
                            deadline=(stopped_at[0] if stopped_at else time.monotonic()) + DUMP_BY_S):
            print(f"{args.client_id}: no window-state dump (state busy)", file=sys.stderr, flush=True)
    print("stopped", flush=True)
    return 0


DUMP_BY_S = 8.8
"""The dump is done this long after the SIGTERM or given up: the suite's limit for an exit is 10 s."""


def dump_state(monitor: Monitor, partitions: list[int], path: Path, deadline: float) -> bool:
    """The window totals of every model held, after pulling the last label changes; nothing when a
    takeover is still running (its thread holds the lock) or the database does not answer by
    ``deadline`` (monotonic). A loaded machine can take more than a second for the pull."""
    now = monitor.clock()
    pipeline = monitor.pipeline
    done = threading.Event()

    def pull() -> None:
        pipeline.pull_labels(now)
        done.set()

    threading.Thread(target=pull, daemon=True).start()
    if not done.wait(max(0.05, deadline - time.monotonic())):
        return False
    if not pipeline.lock.acquire(timeout=max(0.05, deadline - time.monotonic())):
        return False
    try:
        models = {}
        for m in monitor.drift.models:
            t = monitor.drift.window_totals(m, now)
            if t is None:
                continue
            models[m] = {"hist": t.hist.tolist(), "sketch": t.sketch.tolist(), "scalars": t.scalars.tolist()}
    finally:
        pipeline.lock.release()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"now": now, "partitions": partitions, "models": models}))
    os.replace(tmp, path)
    return True


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
