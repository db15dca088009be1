"""The composition root across a restart: a second monitor over the same database and consumer group
takes its window state over on partition assignment (from the checkpoint the first wrote at its stop,
and the rows after it) and evaluates exactly like the first one did (ADWIN excepted: a replay of the
window does not reproduce it)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import msgspec
import pytest
from kafka import KafkaProducer
from sqlalchemy import func, select

from monitor.app import Monitor, build_monitor
from monitor.config import Settings
from monitor.demo.traffic import TrafficGenerator
from monitor.snapshot import Snapshot
from monitor.store.tables import inference_log

pytestmark = pytest.mark.integration
T = 1_800_003_600.0


def _settings(bootstrap: str, prefix: str, pg_url: str) -> Settings:
    return Settings.model_validate({
        "kafka": {"bootstrap_servers": bootstrap, "group_id": f"{prefix}-g", "session_timeout_ms": 6000,
                  "heartbeat_interval_ms": 1000, "poll_timeout_ms": 200,
                  "topics": {"inference": f"{prefix}-inf", "feedback": f"{prefix}-fb",
                             "promotions": f"{prefix}-pr", "drift_events": f"{prefix}-drift"}},
        "database": {"url": pg_url},
        "stats": {"window_buckets": 60, "auto_reference_events": 800, "min_samples": 50,
                  "protected_slices": {"domain": ["regulatory"], "language": ["es"]}},
    })


def _wait(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _comparable(snap: Snapshot) -> dict[tuple[str, ...], tuple[float, int]]:
    return {
        (v.model_id, v.slice, v.signal, v.feature, v.statistic): (round(v.value, 12), v.sample_count)
        for v in snap.values
        if not v.statistic.startswith("adwin")
    }


def _run(monitor: Monitor) -> tuple[threading.Event, threading.Thread]:
    stop = threading.Event()
    thread = threading.Thread(target=monitor.run, args=(stop,), daemon=True)
    thread.start()
    return stop, thread


def test_restart_rebuilds_the_same_window_state(broker, topic_prefix: str, pg_url: str) -> None:
    settings = _settings(broker.bootstrap_servers, topic_prefix, pg_url)
    gen = TrafficGenerator(seed=5, start=T - 40 * 60, events_per_s=3.0, incidents=False)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    encode = msgspec.json.Encoder().encode
    first = build_monitor(settings, clock=lambda: T, serve_metrics=False, create_topics=True)
    stop, thread = _run(first)
    n = 0
    labelled: set[str] = set()
    while gen.now < T - 60:
        step = gen.step(60.0)
        for e in step.inferences:
            producer.send(settings.kafka.topics.inference, key=e["model_id"].encode(), value=encode(e))
        for f in step.feedback:
            producer.send(settings.kafka.topics.feedback, value=encode(f))
            labelled.add(f["request_id"])
        n += len(step.inferences)
    producer.flush()
    db = first.repository.engine

    def rows(labelled_only: bool = False) -> int:
        q = select(func.count()).select_from(inference_log)
        if labelled_only:
            q = q.where(inference_log.c.was_correct.is_not(None))
        with db.connect() as conn:
            return int(conn.execute(q).scalar_one())

    _wait(lambda: rows() == n and rows(True) == len(labelled), 120, "every row and label written")
    first.pipeline.pull_labels(T)  # what the next tick does: the label log's changes reach the statistics
    before = _comparable(first.drift.evaluate(T))
    stop.set()
    thread.join(timeout=20)
    assert not thread.is_alive()
    assert len(before) > 100
    assert any(k[1] == "domain=regulatory" for k in before)

    second = build_monitor(settings, clock=lambda: T, serve_metrics=False)
    assert second.drift.reference(gen._models(T)[0].model_id) is not None  # profile loaded from the DB
    stop2, thread2 = _run(second)
    try:
        _wait(lambda: _comparable(second.drift.evaluate(T)) == before, 60, "rebuilt state equal to the first run")
    finally:
        stop2.set()
        thread2.join(timeout=20)
    producer.close()
