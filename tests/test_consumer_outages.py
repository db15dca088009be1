"""The consumer survives what production throws at it: SIGKILL and restart, SIGTERM, a database
outage, a broker restart. Real Tansu, real PostgreSQL; outages use their own server instances."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.embedded.postgres import PostgresServer
from monitor.embedded.tansu import TansuBroker
from monitor.ingest.topics import ensure_topics
from monitor.store.engine import make_engine
from monitor.store.repository import Repository
from tests.ingest_fixtures import (
    BASE,
    Topics,
    create_ingest_schema,
    inference_dict,
    make_ingest_consumer,
    produce,
    raw,
    running,
    sample,
    wait_for,
)

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]


def _events(topics: Topics, start: int, stop: int) -> list[tuple[str, bytes | None, bytes | None]]:
    return [(topics.inference, b"m-v1", raw(inference_dict(i))) for i in range(start, stop)]


def _ids(repo: Repository) -> list[str]:
    return [r["request_id"] for r in repo.load_rows(None, BASE - 10, BASE + 10**7)]


def _runner(bootstrap: str, prefix: str, url: str, group: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.ingest_runner", bootstrap, prefix, url, group, "100"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def test_sigkill_then_restart_gives_exactly_n_rows(broker, topic_prefix: str, repo: Repository,  # type: ignore[no-untyped-def]
                                                   pg_url: str) -> None:
    n = 6000
    topics = Topics.with_prefix(topic_prefix)
    ensure_topics(broker.bootstrap_servers, topics.all(), partitions=2)
    produce(broker.bootstrap_servers, _events(topics, 0, n))
    group = f"g-{uuid.uuid4().hex[:6]}"
    first = _runner(broker.bootstrap_servers, topic_prefix, pg_url, group)
    try:
        wait_for(lambda: repo.counts()["inference_log"] >= 300, 60, "first rows")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    killed_at = repo.counts()["inference_log"]
    assert killed_at < n, "the consumer finished before it could be killed; raise n"
    second = _runner(broker.bootstrap_servers, topic_prefix, pg_url, group)
    try:
        wait_for(lambda: repo.counts()["inference_log"] >= n, 120, "all rows after restart")
        # SIGTERM: finish the batch in hand, commit, exit within 10 s.
        t0 = time.monotonic()
        second.send_signal(signal.SIGTERM)
        assert second.wait(10) == 0
        assert time.monotonic() - t0 < 10
    finally:
        if second.poll() is None:
            second.kill()
            second.wait()
    ids = _ids(repo)
    assert len(ids) == len(set(ids)) == n
    assert set(ids) == {f"r{i}" for i in range(n)}


@pytest.mark.slow
def test_postgres_outage_pauses_then_catches_up(broker, topic_prefix: str) -> None:  # type: ignore[no-untyped-def]
    topics = Topics.with_prefix(topic_prefix)
    ensure_topics(broker.bootstrap_servers, topics.all(), partitions=2)
    with PostgresServer() as pg:
        create_ingest_schema(pg.url)
        engine = make_engine(pg.url)
        repo = Repository(engine)
        reg = CollectorRegistry()
        group = f"g-{uuid.uuid4().hex[:6]}"
        consumer = make_ingest_consumer(broker.bootstrap_servers, topics, repo, reg, group,
                                        retry_initial_s=0.2, retry_max_s=2.0)
        with running(consumer) as run:
            produce(broker.bootstrap_servers, _events(topics, 0, 1000))
            wait_for(lambda: repo.counts()["inference_log"] == 1000, 60, "rows before the outage")
            pg.stop()
            produce(broker.bootstrap_servers, _events(topics, 1000, 2000))
            wait_for(lambda: sample(reg, "slicewatch_consumer_paused") == 1, 30, "paused")
            time.sleep(30)
            assert run.thread.is_alive()
            assert sample(reg, "slicewatch_consumer_paused") == 1
            retries = sample(reg, "slicewatch_store_retries_total")
            assert retries >= 5  # capped backoff: 0.2, 0.4, ... 2.0 s over 30 s
            produce(broker.bootstrap_servers, _events(topics, 2000, 2500))
            pg.start()
            wait_for(lambda: repo.counts()["inference_log"] == 2500, 90, "rows after the outage")
            wait_for(lambda: sample(reg, "slicewatch_consumer_paused") == 0, 10, "resumed")
            assert run.thread.is_alive()
        ids = _ids(repo)
        assert len(ids) == len(set(ids)) == 2500
        assert sample(reg, "slicewatch_events_written_total", topic=topics.inference) == 2500
        engine.dispose()


@pytest.mark.slow
def test_broker_restart_is_survived(pg_url: str, topic_prefix: str) -> None:
    create_ingest_schema(pg_url)
    engine = make_engine(pg_url)
    repo = Repository(engine)
    topics = Topics.with_prefix(topic_prefix)
    with TansuBroker() as own:
        ensure_topics(own.bootstrap_servers, topics.all(), partitions=1)
        reg = CollectorRegistry()
        consumer = make_ingest_consumer(own.bootstrap_servers, topics, repo, reg, f"g-{uuid.uuid4().hex[:6]}")
        consumer.rejoin_timeout_s = 10.0
        with running(consumer) as run:
            produce(own.bootstrap_servers, _events(topics, 0, 200))
            wait_for(lambda: repo.counts()["inference_log"] == 200, 60, "rows before the restart")
            own.restart()  # memory storage: topics, offsets and the group are gone
            time.sleep(3)
            assert run.thread.is_alive()
            ensure_topics(own.bootstrap_servers, topics.all(), partitions=1)
            # The recreated topic starts again at offset 0. Whether the consumer resets to the earliest
            # offset or keeps its old position (200) depends on whether its first fetch after the
            # restart sees an empty topic or already these events: an artefact of memory storage, not
            # of a real cluster. Either way every event from offset 200 on must arrive.
            produce(own.bootstrap_servers, _events(topics, 200, 600))
            later = {inference_dict(i)["request_id"] for i in range(400, 600)}
            wait_for(lambda: later <= set(_ids(repo)), 120, "rows after the restart")
            assert run.thread.is_alive()
    ids = _ids(repo)
    assert len(ids) == len(set(ids))
    assert len(ids) in (400, 600)
    engine.dispose()
