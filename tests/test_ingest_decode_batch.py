"""The consumer's batch decoding on arbitrary bytes: every record becomes an event or a dead letter
with a reason, nothing raises, offsets advance past every record. No broker needed: the records
are kafka-python's own ConsumerRecord values and no Kafka client is created."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.consumer.fetcher import ConsumerRecord
from kafka.structs import TopicPartition
from prometheus_client import CollectorRegistry

from monitor.ingest.batch import Batch
from monitor.ingest.consumer import IngestConsumer
from monitor.ingest.metrics import ConsumerMetrics
from monitor.records import BatchOutcome, WriteResult
from monitor.store.engine import make_engine
from monitor.store.repository import Repository
from tests.ingest_fixtures import inference_dict, raw

TOPICS = ("inf", "fb", "promo")
_consumer = IngestConsumer(
    bootstrap_servers="127.0.0.1:1", group_id="g", inference_topic="inf", feedback_topic="fb",
    promotions_topic="promo", repository=Repository(make_engine("sqlite://")),
    metrics=ConsumerMetrics(CollectorRegistry()), max_event_bytes=2048, dead_letter_value_cap_bytes=100,
)


def _record(topic: str, offset: int, key: bytes | None, value: bytes | None) -> ConsumerRecord:
    return ConsumerRecord(topic, 0, -1, offset, 0, 0, key, value, [], None,
                          len(key or b""), len(value or b""), -1)


values = st.one_of(
    st.none(),
    st.binary(max_size=3000),
    st.builds(lambda i, extra: raw({**inference_dict(i), **extra}), st.integers(0, 10**6),
              st.dictionaries(st.sampled_from(["confidence", "schema_version", "tokens_in", "zz"]),
                              st.one_of(st.none(), st.integers(), st.floats(), st.text(max_size=5)))),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(TOPICS), st.one_of(st.none(), st.just(b"m-v1"), st.binary(max_size=8)),
                          values), max_size=30))
def test_every_record_is_an_event_or_a_dead_letter(records: list[tuple[str, bytes | None, bytes | None]]) -> None:
    by_tp: dict[TopicPartition, list[ConsumerRecord]] = {}
    for offset, (topic, key, value) in enumerate(records):
        by_tp.setdefault(TopicPartition(topic, 0), []).append(_record(topic, offset, key, value))
    batch = _consumer._decode(by_tp)
    assert len(batch.items) + len(batch.dead_letters) == len(records)
    for dl in batch.dead_letters:
        assert dl.stage in {"size", "json", "schema", "version"} and dl.error_class and dl.reason
        assert dl.value is None or len(dl.value) <= 100
    for tp, recs in by_tp.items():
        assert batch.offsets[tp] == recs[-1].offset + 1


def test_the_next_write_starts_early_only_without_a_pending_takeover() -> None:
    """Once a batch is completed the next one's write starts at once, except while the assignment
    hook (the statistics' takeover) is still due: nothing new is written before it ran."""
    written: list[int] = []

    class Store(Repository):
        def write(self, *args: Any, **kw: Any) -> BatchOutcome:
            written.append(1)
            return BatchOutcome(result=WriteResult())

    consumer = IngestConsumer(
        bootstrap_servers="127.0.0.1:1", group_id="g", inference_topic="inf", feedback_topic="fb",
        promotions_topic="promo", repository=Store(make_engine("sqlite://")),
        metrics=ConsumerMetrics(CollectorRegistry()), on_assigned=lambda tps: None,
    )
    consumer._queue.append(Batch())
    consumer._rebuild_due = True  # a rebalance happened; the hook has not run yet
    consumer._start_next_write()
    assert consumer._queue[0].future is None and not written
    consumer._rebuild_due = False
    consumer._start_next_write()
    future = consumer._queue[0].future
    assert future is not None
    future.result(timeout=10)
    assert written == [1]
