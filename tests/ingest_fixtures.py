"""Event factories and small helpers shared by the store and consumer tests."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from kafka import KafkaConsumer, KafkaProducer
from prometheus_client import CollectorRegistry

from monitor.events import FeedbackEvent, InferenceEvent, PromotionEvent

BASE = 1_760_000_000.0


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat()


def inference_dict(i: int, model: str = "m-v1", served: float | None = None) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "request_id": f"r{i}",
        "model_id": model,
        "served_at": iso(served if served is not None else BASE + i),
        "input_features": {"age": 20 + i % 50, "country": ["de", "fr", "us"][i % 3], "vip": i % 2 == 0},
        "output": ["yes", "no"][i % 2],
        "confidence": (i % 100) / 100,
        "slice": {"tier": ["free", "pro"][i % 2]},
        "lineage": {"prompt_template_sha": "abc123"},
        "latency_ms": 12.5,
        "tokens_in": 10,
        "tokens_out": 3,
    }


def feedback_dict(
    i: int, observed: float, correct: bool = True, score: float | None = None
) -> dict[str, Any]:
    d: dict[str, Any] = {
        "schema_version": 1,
        "request_id": f"r{i}",
        "observed_at": iso(observed),
        "was_correct": correct,
        "source": "human",
    }
    if score is not None:
        d["score"] = score
    return d


def promotion_dict(model: str, at: float, rollback: str | None = None) -> dict[str, Any]:
    return {"schema_version": 1, "model_id": model, "promoted_at": iso(at), "rollback_target": rollback}


def raw(d: dict[str, Any]) -> bytes:
    return json.dumps(d).encode()


def inference(i: int, **kw: Any) -> InferenceEvent:
    return msgspec.convert(inference_dict(i, **kw), InferenceEvent)


def feedback(i: int, observed: float, correct: bool = True, score: float | None = None) -> FeedbackEvent:
    return msgspec.convert(feedback_dict(i, observed, correct, score), FeedbackEvent)


def promotion(model: str, at: float, rollback: str | None = None) -> PromotionEvent:
    return msgspec.convert(promotion_dict(model, at, rollback), PromotionEvent)


# ----------------------------------------------------------------------------- broker helpers


FAST_GROUP = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000}


@dataclass(frozen=True)
class Topics:
    inference: str
    feedback: str
    promotions: str

    @classmethod
    def with_prefix(cls, prefix: str) -> Topics:
        return cls(f"{prefix}-inference", f"{prefix}-feedback", f"{prefix}-promotions")

    def all(self, dlq: bool = True) -> list[str]:
        base = [self.inference, self.feedback, self.promotions]
        return base + [f"{t}.dlq" for t in base] if dlq else base


def produce(bootstrap: str, messages: Sequence[tuple[str, bytes | None, bytes | None]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        futures = [producer.send(t, key=k, value=v) for t, k, v in messages]
        producer.flush(timeout=60)
        for f in futures:
            f.get(timeout=60)
    finally:
        producer.close(timeout=5)


def read_topic(bootstrap: str, topic: str, expected: int, timeout_s: float = 30.0) -> list[Any]:
    """Read a topic from the beginning without a group until ``expected`` records (or timeout)."""
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=None)
    out: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and len(out) < expected:
            for recs in consumer.poll(timeout_ms=500).values():
                out.extend(recs)
        # a little longer, to catch extra (duplicate) records
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            for recs in consumer.poll(timeout_ms=300).values():
                out.extend(recs)
    finally:
        consumer.close()
    return out


def make_ingest_consumer(bootstrap: str, topics: Topics, repository: Any, registry: CollectorRegistry,
                         group: str, **kw: Any) -> Any:
    from monitor.ingest.consumer import IngestConsumer
    from monitor.ingest.metrics import ConsumerMetrics

    options: dict[str, Any] = {
        "max_poll_records": 500,
        "poll_timeout_ms": 200,
        "retry_initial_s": 0.2,
        "retry_max_s": 2.0,
        **FAST_GROUP,
    }
    options.update(kw)
    return IngestConsumer(
        bootstrap_servers=bootstrap, group_id=group, inference_topic=topics.inference,
        feedback_topic=topics.feedback, promotions_topic=topics.promotions, repository=repository,
        metrics=ConsumerMetrics(registry), **options,
    )


@dataclass
class Running:
    thread: threading.Thread
    stop: threading.Event
    errors: list[BaseException]


@contextmanager
def running(consumer: Any) -> Iterator[Running]:
    """Run ``consumer.run`` in a thread; on exit set the stop event and join (asserts it returned)."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            consumer.run(stop)
        except BaseException as e:  # recorded so the test can fail on it
            errors.append(e)
            raise

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    state = Running(thread, stop, errors)
    try:
        yield state
    finally:
        stop.set()
        thread.join(timeout=15)
    assert not thread.is_alive(), "consumer did not stop within 15 s"
    assert not errors, f"consumer raised {errors!r}"


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def create_ingest_schema(url: str) -> None:
    """The schema the monitor runs on (the migrations: on PostgreSQL, a partitioned ``inference_log``)."""
    from monitor.store.migrate import upgrade

    upgrade(url)
