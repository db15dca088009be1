"""The drift event outbox against the real Tansu broker: an outage delays events, never loses them."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from monitor.alerts.drift_event import build_drift_event
from monitor.alerts.rules import Rule
from monitor.alerts.sinks.kafka import KafkaDriftPublisher
from monitor.alerts.state import AlertEvaluator
from monitor.embedded.tansu import TansuBroker
from monitor.pipeline import publish_outbox
from monitor.snapshot import SignalValue, Snapshot
from monitor.store import alerts as store
from monitor.store.base import metadata
from monitor.store.engine import make_engine
from tests.test_alert_drift_event import VALIDATOR

pytestmark = pytest.mark.integration


def create_topic(bootstrap: str, topic: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()


def consume(bootstrap: str, topic: str, expected: int, timeout_s: float = 20.0) -> list[tuple[str, dict]]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=1000,
    )
    got: list[tuple[str, dict]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(got) < expected and time.monotonic() < deadline:
            for msg in consumer:
                got.append((msg.key.decode(), json.loads(msg.value)))
    finally:
        consumer.close()
    return got


def add_events(engine, transitions: list, now: float) -> int:
    """What the pipeline does with an evaluation's transitions: their drift events into the outbox."""
    chosen = [t for t in transitions if t.to_state in ("firing", "resolved")]
    return store.add_drift_events(engine, [build_drift_event(t.alert) for t in chosen],
                                  [t.fingerprint for t in chosen], now)


def fire(ev: AlertEvaluator, now: float, model: str) -> list:
    v = SignalValue(model, "all", "input", "x", "psi", 0.9, 500)
    return ev.evaluate(Snapshot(now, now - 600, now, (v,)), {}, now)


def test_broker_outage_delays_but_does_not_lose_drift_events(tmp_path: Path, topic_prefix: str) -> None:
    topic = f"{topic_prefix}-drift-events"
    engine = make_engine(f"sqlite:///{tmp_path / 'o.db'}")
    metadata.create_all(engine, tables=[store.drift_alert, store.drift_event])
    ev = AlertEvaluator({"input.psi": Rule("input.psi", 0.2, 0.3, min_samples=10, hold_evaluations=1)})
    with TansuBroker() as broker:
        create_topic(broker.bootstrap_servers, topic)
        pub = KafkaDriftPublisher(broker.bootstrap_servers, topic, send_timeout_s=2.0, retry_initial_s=5.0)
        add_events(engine, fire(ev, 100.0, "m-a"), now=100.0)
        assert publish_outbox(engine, pub, now=100.0) == 1

        broker.stop()
        add_events(engine, fire(ev, 115.0, "m-b"), now=115.0)
        assert publish_outbox(engine, pub, now=115.0) == 0
        assert pub.failures_total == 1 and pub.next_attempt_at == 120.0
        (queued,) = store.unpublished_events(engine)
        assert queued[1] == "m-b"
        assert publish_outbox(engine, pub, now=119.0) == 0  # backing off: no attempt
        assert pub.failures_total == 1

        broker.start()  # memory storage: the topic has to be created again
        create_topic(broker.bootstrap_servers, topic)
        assert publish_outbox(engine, pub, now=120.0) == 1
        assert store.unpublished_events(engine) == []
        got = consume(broker.bootstrap_servers, topic, expected=1)
        pub.close()
    assert [(k, e["event_id"]) for k, e in got] == [("m-b", queued[0])]
    assert got[0][1]["model_id"] == "m-b" and got[0][1]["state"] == "firing"
    VALIDATOR.validate(got[0][1])
    engine.dispose()
