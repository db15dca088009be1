"""The consumer against the real Tansu broker and the real PostgreSQL: exactly-once rows from
at-least-once delivery, the label join through Kafka, and poison messages dead-lettered once."""

from __future__ import annotations

import itertools
import json
import random
import time
import uuid
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import func, select

from monitor.ingest.topics import ensure_topics
from monitor.records import WriteResult
from monitor.store.engine import make_engine
from monitor.store.repository import Repository
from monitor.store.tables import inference_log
from tests.ingest_fixtures import (
    BASE,
    Topics,
    create_ingest_schema,
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


@pytest.fixture
def topics(broker, topic_prefix: str) -> Topics:  # type: ignore[no-untyped-def]
    t = Topics.with_prefix(topic_prefix)
    ensure_topics(broker.bootstrap_servers, t.all(), partitions=3)
    return t


def _distinct_rows(repo: Repository) -> tuple[int, int]:
    with repo.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(inference_log)).scalar_one()
        distinct = conn.execute(select(func.count(func.distinct(inference_log.c.request_id)))).scalar_one()
    return total, distinct


def test_duplicates_and_full_redelivery_give_exactly_n_rows(  # type: ignore[no-untyped-def]
    broker, topics: Topics, repo: Repository
) -> None:
    n = 1500
    rng = random.Random(7)
    messages = []
    for i in range(n):
        model = f"m-{i % 3}"
        msg = (topics.inference, model.encode(), raw(inference_dict(i, model=model)))
        messages.append(msg)
        if rng.random() < 0.1:
            messages.append(msg)  # duplicate, usually inside the same batch
    produce(broker.bootstrap_servers, messages)

    written: list[WriteResult] = []
    reg = CollectorRegistry()
    consumer = make_ingest_consumer(broker.bootstrap_servers, topics, repo, reg, f"g-{uuid.uuid4().hex[:6]}",
                                    on_written=lambda r, now: written.append(r))
    with running(consumer):
        wait_for(lambda: sample(reg, "slicewatch_events_consumed_total", topic=topics.inference)
                 >= len(messages), 60, "first pass")
    assert _distinct_rows(repo) == (n, n)
    assert sum(len(r.new_inferences) for r in written) == n  # each new row handed on exactly once
    assert sample(reg, "slicewatch_events_written_total", topic=topics.inference) == n
    assert sample(reg, "slicewatch_events_duplicate_total", topic=topics.inference) == len(messages) - n

    # Full redelivery: a new group starts from the earliest offsets.
    reg2 = CollectorRegistry()
    written.clear()
    again = make_ingest_consumer(broker.bootstrap_servers, topics, repo, reg2, f"g-{uuid.uuid4().hex[:6]}",
                                 on_written=lambda r, now: written.append(r))
    with running(again):
        wait_for(lambda: sample(reg2, "slicewatch_events_consumed_total", topic=topics.inference)
                 >= len(messages), 60, "redelivery")
    assert _distinct_rows(repo) == (n, n)
    assert sum(len(r.new_inferences) for r in written) == 0
    assert sample(reg2, "slicewatch_events_duplicate_total", topic=topics.inference) == len(messages)


def test_labels_through_kafka(broker, topics: Topics, repo: Repository) -> None:  # type: ignore[no-untyped-def]
    # r0..r9 predictions; labels: r0-r4 before (earlier topic order), r5-r9 after, r0 twice, r99 unknown.
    produce(broker.bootstrap_servers, [
        (topics.feedback, b"r0", raw(feedback_dict(0, BASE + 100, correct=False))),
        (topics.feedback, b"r0", raw(feedback_dict(0, BASE + 200, correct=True))),
        (topics.feedback, b"r0", raw(feedback_dict(0, BASE + 150, correct=False))),  # older: ignored
        *[(topics.feedback, f"r{i}".encode(), raw(feedback_dict(i, BASE + 100))) for i in range(1, 5)],
        (topics.feedback, b"r99", raw(feedback_dict(99, BASE + 100))),
        (topics.promotions, b"m-v1", raw(promotion_dict("m-v1", BASE, rollback="m-v0"))),
    ])
    changes = []
    reg = CollectorRegistry()
    consumer = make_ingest_consumer(broker.bootstrap_servers, topics, repo, reg, f"g-{uuid.uuid4().hex[:6]}",
                                    on_written=lambda r, now: changes.extend(r.label_changes))
    with running(consumer):
        wait_for(lambda: repo.counts()["pending_label"] == 6 and repo.counts()["model_version"] == 1,
                 60, "pending labels")
        produce(broker.bootstrap_servers,
                [(topics.inference, b"m-v1", raw(inference_dict(i))) for i in range(10)])
        wait_for(lambda: repo.counts()["inference_log"] == 10 and repo.counts()["pending_label"] == 1,
                 60, "predictions")
        produce(broker.bootstrap_servers, [
            *[(topics.feedback, f"r{i}".encode(), raw(feedback_dict(i, BASE + 300, correct=False)))
              for i in range(5, 10)],
            (topics.feedback, b"r5", raw(feedback_dict(5, BASE + 300, correct=True))),  # tie: first kept
        ])
        wait_for(lambda: sum(r["was_correct"] is not None for r in repo.load_rows(None, BASE, BASE + 100))
                 == 10, 60, "labels after predictions")
        wait_for(lambda: sample(reg, "slicewatch_events_consumed_total", topic=topics.feedback) == 14, 30,
                 "all feedback consumed")
    rows = {r["request_id"]: r for r in repo.load_rows(None, BASE, BASE + 100)}
    assert rows["r0"]["was_correct"] is True and rows["r0"]["label_observed_at"] == pytest.approx(BASE + 200)
    assert all(rows[f"r{i}"]["was_correct"] is False for i in range(5, 10))
    assert repo.counts()["pending_label"] == 1  # r99 has no prediction
    # Each prediction got exactly one first label, nothing double-counted.
    per_request: dict[str, list] = {}
    for c in changes:
        per_request.setdefault(c.request_id, []).append(c)
    assert sorted(per_request) == sorted(f"r{i}" for i in range(10))
    assert all(len(v) == 1 and v[0].old is None for v in per_request.values())
    assert [p.model_id for p in repo.promotions()] == ["m-v1"]


def test_poison_is_dead_lettered_once_and_valid_rows_all_arrive(  # type: ignore[no-untyped-def]
    broker, topics: Topics, repo: Repository
) -> None:
    max_bytes = 4096
    n = 1200
    rng = random.Random(11)
    poison_kinds = {  # expected decoder stage -> poison maker
        "json": lambda i: b'{"schema_version": 1, "request_id": ',
        "schema": lambda i: raw({**inference_dict(i), "confidence": "high"}),
        "size": lambda i: raw({**inference_dict(i), "output": "x" * (max_bytes + 10)}),
        "version": lambda i: raw({**inference_dict(i), "schema_version": 99}),
    }
    messages, valid, poison = [], set(), {}
    for i in range(n):
        if i % 25 == 0:  # 4% poison in total: 1% of each kind
            kind = list(poison_kinds)[(i // 25) % 4]
            messages.append((topics.inference, b"m-v1", poison_kinds[kind](i)))
            poison[i] = kind
        else:
            messages.append((topics.inference, b"m-v1", raw(inference_dict(i))))
            valid.add(f"r{i}")
    messages.append((topics.feedback, b"x", b"\xff\xfe not utf8"))
    messages.append((topics.promotions, b"x", json.dumps({"schema_version": 1}).encode()))
    messages.append((topics.inference, b"m-v1", None))  # tombstone
    garbage = [rng.randbytes(rng.randint(0, 300)) for _ in range(30)]  # arbitrary bytes, some empty
    messages += [(topics.promotions, None, g) for g in garbage]
    rng.shuffle(messages)
    produce(broker.bootstrap_servers, messages)

    reg = CollectorRegistry()
    consumer = make_ingest_consumer(broker.bootstrap_servers, topics, repo, reg, f"g-{uuid.uuid4().hex[:6]}",
                                    max_event_bytes=max_bytes, dead_letter_value_cap_bytes=64)
    total_poison = len(poison) + 3 + len(garbage)
    with running(consumer):
        wait_for(lambda: repo.counts()["dead_letter"] == total_poison
                 and repo.counts()["inference_log"] == len(valid), 60, "dead letters and rows")
        wait_for(lambda: not repo.unpublished_dead_letters(), 30, "dead letters published")
    assert {r["request_id"] for r in repo.load_rows(None, BASE - 10, BASE + 10_000)} == valid

    stored = repo.dead_letters()
    assert len({(d.topic, d.partition, d.offset) for d in stored}) == total_poison
    inference_dl = [d for d in stored if d.topic == topics.inference and d.value is not None]
    assert sorted(d.stage for d in inference_dl) == sorted(poison.values())
    for d in stored:
        assert d.reason and d.stage and d.value_size >= len(d.value or b"")
        assert d.value is None or len(d.value) <= 64
        assert "xxxxxxxx" not in d.reason  # no payload content in the reason
    oversized = [d for d in stored if d.stage == "size" and d.value]
    assert oversized and all(d.value_size > max_bytes for d in oversized)
    assert sample(reg, "slicewatch_events_dead_lettered_total", topic=topics.inference,
                  error_class="invalid_json") == sum(1 for k in poison.values() if k == "json")

    out = read_topic(broker.bootstrap_servers, f"{topics.inference}.dlq", len(inference_dl) + 1)
    out += read_topic(broker.bootstrap_servers, f"{topics.feedback}.dlq", 1)
    out += read_topic(broker.bootstrap_servers, f"{topics.promotions}.dlq", 1 + len(garbage))
    assert len(out) == total_poison  # each exactly once
    by_source = {(d.topic, d.partition, d.offset): d for d in stored}
    for rec in out:
        h = {k: v.decode() for k, v in rec.headers}
        d = by_source[(h["source_topic"], int(h["source_partition"]), int(h["source_offset"]))]
        assert h["stage"] == d.stage and h["error_class"] == d.error_class
        assert rec.value == d.value


def test_embedded_sqlite_default(broker, topics: Topics, tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path}/slicewatch.db"
    create_ingest_schema(url)
    engine = make_engine(url)
    repo = Repository(engine)
    produce(broker.bootstrap_servers, [(topics.inference, b"m-v1", raw(inference_dict(i))) for i in range(300)]
            + [(topics.feedback, b"r1", raw(feedback_dict(1, BASE + 50)))])
    reg = CollectorRegistry()
    consumer = make_ingest_consumer(broker.bootstrap_servers, topics, repo, reg, f"g-{uuid.uuid4().hex[:6]}",
                                    max_poll_records=50)
    with running(consumer):
        wait_for(lambda: repo.counts()["inference_log"] == 300, 60, "rows in SQLite")
        wait_for(lambda: any(r["was_correct"] for r in repo.load_rows(None, BASE, BASE + 2)), 30, "label")
    engine.dispose()


def test_row_the_database_rejects_is_dead_lettered(broker, topics: Topics, repo: Repository) -> None:  # type: ignore[no-untyped-def]
    bad = {**inference_dict(5), "output": "a\u0000b"}  # valid JSON and schema; PostgreSQL text refuses NUL
    produce(broker.bootstrap_servers, [(topics.inference, b"m-v1", raw(inference_dict(i))) for i in range(5)]
            + [(topics.inference, b"m-v1", raw(bad))]
            + [(topics.inference, b"m-v1", raw(inference_dict(i))) for i in range(6, 10)])
    reg = CollectorRegistry()
    consumer = make_ingest_consumer(broker.bootstrap_servers, topics, repo, reg, f"g-{uuid.uuid4().hex[:6]}")
    with running(consumer):
        wait_for(lambda: repo.counts()["dead_letter"] == 1 and repo.counts()["inference_log"] == 9, 60,
                 "rows and the rejected one")
    [dl] = repo.dead_letters()
    assert (dl.stage, dl.error_class) == ("store", "store_rejected")
    assert dl.reason.startswith("rejected by the database") and "a\x00b" not in dl.reason
    assert {r["request_id"] for r in repo.load_rows(None, 0, 2e9)} == {f"r{i}" for i in range(10) if i != 5}


def test_a_first_assignment_writes_its_first_poll_instead_of_reading_it_twice(  # type: ignore[no-untyped-def]
    broker, topics: Topics, repo: Repository, caplog: pytest.LogCaptureFixture
) -> None:
    """The poll that completes the group join returns records already: they are written, not
    dropped and read again."""
    n = 2000
    produce(broker.bootstrap_servers,
            [(topics.inference, f"m-{i % 3}".encode(), raw(inference_dict(i, model=f"m-{i % 3}"))) for i in range(n)])
    reg = CollectorRegistry()
    consumer = make_ingest_consumer(broker.bootstrap_servers, topics, repo, reg, f"g-{uuid.uuid4().hex[:6]}")
    with caplog.at_level("INFO", logger="monitor.ingest.consumer"), running(consumer):
        wait_for(lambda: sample(reg, "slicewatch_events_consumed_total", topic=topics.inference) >= n, 60, "all read")
    assert _distinct_rows(repo) == (n, n)
    assert any("assigned" in r.getMessage() for r in caplog.records)
    assert not [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]


class _Traced(Repository):
    """The repository, with the order in which batches are decoded (``prepare`` runs on the
    consuming thread right after the decode) and their writes start; each write takes 0.2 s."""

    def __init__(self, engine: Any) -> None:
        super().__init__(engine)
        self.trace: list[tuple[str, str]] = []

    def prepare(self, inferences: Any) -> Any:
        if inferences:
            self.trace.append(("decoded", inferences[0][0].request_id))
        return super().prepare(inferences)

    def write(self, inferences: Any = (), *args: Any, **kw: Any) -> Any:
        if not inferences:
            return super().write(inferences, *args, **kw)
        # on the writer thread: the consuming thread is then in poll or waiting for this write
        self.trace.append(("write", inferences[0][0].request_id))
        time.sleep(0.2)
        out = super().write(inferences, *args, **kw)
        self.trace.append(("written", inferences[0][0].request_id))
        return out


def test_a_batch_write_starts_before_the_next_poll(broker, topics: Topics, pg_url: str) -> None:  # type: ignore[no-untyped-def]
    """Once batch N is written and completed, the write of N+1 (decoded while N was written) starts at once:
    the database works on N+1 while N+2 is polled and decoded. Started after that poll, the write
    waited for it and the two ran one after the other."""
    create_ingest_schema(pg_url)
    repo = _Traced(make_engine(pg_url))
    n = 1200
    produce(broker.bootstrap_servers,
            [(topics.inference, b"m", raw(inference_dict(i, model="m"))) for i in range(n)])
    reg = CollectorRegistry()
    consumer = make_ingest_consumer(broker.bootstrap_servers, topics, repo, reg, f"g-{uuid.uuid4().hex[:6]}",
                                    max_poll_records=100)
    with running(consumer):
        wait_for(lambda: sample(reg, "slicewatch_events_written_total", topic=topics.inference) >= n, 90, "rows")
    repo.engine.dispose()
    decoded = [tag for what, tag in repo.trace if what == "decoded"]
    place = {step: k for k, step in enumerate(repo.trace)}
    checked = 0
    for first, after in itertools.pairwise(decoded[1:]):
        if ("write", first) in place and ("decoded", after) in place:
            assert place[("write", first)] < place[("decoded", after)], repo.trace
            checked += 1
    assert checked >= 5
    for before, then in itertools.pairwise(decoded):  # and never before the batch before is written
        if ("write", then) in place:
            assert place[("written", before)] < place[("write", then)], repo.trace
