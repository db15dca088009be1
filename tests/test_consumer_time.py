"""Time at the edges, through the real consumer, broker and PostgreSQL: every boundary of the RFC 3339
range is either stored or dead-lettered at stage ``time`` (never raised: the consumer keeps going),
events stamped far ahead of the ingest clock are dead-lettered and counted, and labels whose
prediction never arrives leave ``pending_label`` after the TTL as ``unknown_request`` dead letters."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from monitor.ingest.topics import ensure_topics
from monitor.store.repository import Repository
from tests.ingest_fixtures import (
    BASE,
    Topics,
    feedback_dict,
    inference_dict,
    make_ingest_consumer,
    produce,
    promotion_dict,
    raw,
    read_topic,
    running,
    sample,
    wait_for,
)

pytestmark = pytest.mark.integration

# served_at text -> expected outcome: None = stored, else (stage, error_class) of the dead letter
BOUNDARIES: dict[str, tuple[str, str] | None] = {
    "0001-01-01T00:00:00Z": None,  # the first representable instant
    "0001-01-01T00:00:00-01:00": None,  # 01:00 UTC on day one
    "0001-01-01T00:00:00+01:00": ("time", "time_out_of_range"),  # UTC falls in year 0
    "9999-12-31T23:59:59-01:00": ("time", "time_out_of_range"),  # UTC falls in year 10000
    "9999-12-31T23:59:59+14:00": ("time", "future_event"),  # representable, far ahead of the clock
    "9999-12-31T23:59:59Z": ("time", "future_event"),
    "2024-02-29T12:00:00+14:00": None,  # a leap day at the extreme offsets
    "2024-02-29T12:00:00-14:00": None,
    "2023-02-29T12:00:00Z": ("schema", "schema_violation"),  # not a leap year
    "2025-10-09T10:00:00.123456789Z": None,  # nine fractional digits
    "2025-10-09T23:59:59.999999999Z": None,  # rounds into the next day
}


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def topics(broker, topic_prefix: str) -> Topics:  # type: ignore[no-untyped-def]
    t = Topics.with_prefix(topic_prefix)
    ensure_topics(broker.bootstrap_servers, t.all(), partitions=2)
    return t


def test_time_boundaries_are_stored_or_dead_lettered_never_raised(  # type: ignore[no-untyped-def]
    broker, topics: Topics, repo: Repository
) -> None:
    clock = FakeClock(BASE + 86_400)
    messages: list[tuple[str, bytes | None, bytes | None]] = []
    expected_rows: set[str] = set()
    expected_dl: list[tuple[str, str]] = []
    for i, (text, outcome) in enumerate(BOUNDARIES.items()):
        messages.append((topics.inference, b"m-v1", raw({**inference_dict(i), "served_at": text})))
        if outcome is None:
            expected_rows.add(f"r{i}")
        else:
            expected_dl.append(outcome)
    # the same boundaries on the other two event kinds' time fields
    late_label = {**feedback_dict(0, BASE), "observed_at": "9999-12-31T23:59:59-01:00"}
    early_promotion = {**promotion_dict("m-v2", BASE), "promoted_at": "0001-01-01T00:00:00+01:00"}
    future_promotion = {**promotion_dict("m-v3", BASE), "promoted_at": "9999-12-31T23:59:59Z"}
    messages.append((topics.feedback, None, raw(late_label)))
    messages.append((topics.promotions, b"m-v2", raw(early_promotion)))
    messages.append((topics.promotions, b"m-v3", raw(future_promotion)))
    expected_dl += [("time", "time_out_of_range"), ("time", "time_out_of_range"), ("time", "future_event")]
    # after the poison, ordinary rows still arrive: the consumer neither crashed nor stalled
    tail = range(100, 400)
    messages += [(topics.inference, b"m-v1", raw(inference_dict(i))) for i in tail]
    expected_rows |= {f"r{i}" for i in tail}
    produce(broker.bootstrap_servers, messages)

    reg = CollectorRegistry()
    consumer = make_ingest_consumer(broker.bootstrap_servers, topics, repo, reg, f"g-{uuid.uuid4().hex[:6]}",
                                    clock=clock, max_future_s=600.0)
    with running(consumer) as run:
        wait_for(lambda: repo.counts()["inference_log"] == len(expected_rows)
                 and repo.counts()["dead_letter"] == len(expected_dl), 60, "rows and dead letters")
        wait_for(lambda: not repo.unpublished_dead_letters(), 30, "dead letters published")
        assert run.thread.is_alive() and not run.errors

    stored = {r["request_id"] for r in repo.load_rows(None, -62135596800.0, 253402300799.0)}
    assert stored == expected_rows
    dead = repo.dead_letters()
    assert sorted((d.stage, d.error_class) for d in dead) == sorted(expected_dl)
    for d in dead:
        assert "23:59:59" not in d.reason and "T00:00" not in d.reason  # names the field, never the value
    future = sum(
        sample(reg, "slicewatch_future_events_total", topic=t) for t in (topics.inference, topics.promotions)
    )
    assert future == sum(1 for o in expected_dl if o[1] == "future_event")
    n_inference_dl = sum(1 for o in BOUNDARIES.values() if o is not None)
    assert len(read_topic(broker.bootstrap_servers, f"{topics.inference}.dlq", n_inference_dl)) == n_inference_dl


def test_labels_without_prediction_expire_to_dead_letters(  # type: ignore[no-untyped-def]
    broker, topics: Topics, repo: Repository
) -> None:
    ttl = 3600.0
    clock = FakeClock(BASE + 10_000)
    # 20 labels whose predictions never come, 10 whose predictions do (before the TTL)
    messages: list[tuple[str, bytes | None, bytes | None]] = [
        (topics.feedback, None, raw(feedback_dict(i, BASE + 5_000))) for i in range(30)
    ]
    produce(broker.bootstrap_servers, messages)
    reg = CollectorRegistry()
    consumer = make_ingest_consumer(broker.bootstrap_servers, topics, repo, reg, f"g-{uuid.uuid4().hex[:6]}",
                                    clock=clock, pending_label_ttl_s=ttl, maintenance_every_s=0.2)
    gauge: Any = lambda: sample(reg, "slicewatch_pending_labels")  # noqa: E731
    with running(consumer):
        wait_for(lambda: repo.counts()["pending_label"] == 30 and gauge() == 30, 60, "30 labels waiting")
        produce(broker.bootstrap_servers, [(topics.inference, b"m-v1", raw(inference_dict(i))) for i in range(20, 30)])
        wait_for(lambda: repo.counts()["pending_label"] == 20, 60, "10 labels joined")
        clock.now += ttl / 2
        wait_for(lambda: gauge() == 20, 30, "gauge follows")
        assert repo.counts()["dead_letter"] == 0  # not yet expired
        clock.now += ttl  # every waiting label is now older than the TTL
        wait_for(lambda: repo.counts()["pending_label"] == 0 and gauge() == 0, 30, "waiting labels expired")
        wait_for(lambda: not repo.unpublished_dead_letters(), 30, "dead letters published")

    dead = repo.dead_letters()
    assert len(dead) == 20
    assert {(d.stage, d.error_class, d.topic) for d in dead} == {("label", "unknown_request", topics.feedback)}
    assert {d.key for d in dead} == {f"r{i}".encode() for i in range(20)}
    labelled = [r for r in repo.load_rows(None, BASE, BASE + 100) if r["was_correct"] is not None]
    assert len(labelled) == 10
    assert sample(reg, "slicewatch_events_dead_lettered_total", topic=topics.feedback,
                  error_class="unknown_request") == 20
    out = read_topic(broker.bootstrap_servers, f"{topics.feedback}.dlq", 20)
    assert len(out) == 20
