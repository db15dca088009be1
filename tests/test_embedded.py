"""The embedded servers the other tests rely on actually serve."""

from __future__ import annotations

import time

import psycopg
import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

pytestmark = pytest.mark.integration


def test_postgres_accepts_queries(pg_url: str) -> None:
    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT version()").fetchone()
    assert row is not None and "PostgreSQL" in row[0]


def test_tansu_round_trip_with_consumer_group(broker, topic_prefix: str) -> None:
    topic = f"{topic_prefix}-rt"
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    admin.create_topics([NewTopic(topic, 2, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    for i in range(50):
        producer.send(topic, key=b"m", value=str(i).encode())
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap_servers,
        group_id=f"{topic_prefix}-g",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    got: list[bytes] = []
    deadline = time.monotonic() + 60
    while len(got) < 50 and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            got.extend(r.value for r in records)
    consumer.close()
    assert sorted(int(v) for v in got) == list(range(50))
