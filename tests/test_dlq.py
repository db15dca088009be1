"""``slicewatch dlq``: dead letters listed by reason, shown, and re-driven through the real broker
and consumer once their cause is fixed; a re-driven event lands once."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from typer.testing import CliRunner

from monitor.app import redrive_dead_letters
from monitor.cli import app
from monitor.config import DatabaseSettings, IngestSettings, KafkaSettings, Settings, TopicSettings
from monitor.embedded.tansu import TansuBroker
from monitor.ingest.topics import ensure_topics
from monitor.store.engine import make_engine
from monitor.store.repository import Repository
from tests.ingest_fixtures import (
    Topics,
    create_ingest_schema,
    inference_dict,
    make_ingest_consumer,
    produce,
    raw,
    running,
    wait_for,
)

pytestmark = pytest.mark.integration
runner = CliRunner()


def big(i: int) -> bytes:
    d = inference_dict(i)
    d["input_features"]["note"] = "x" * 1500  # 1.9 KB: over a 1 KiB limit, under 4 KiB
    return raw(d)


def test_redrive_after_the_limit_was_raised(broker: TansuBroker, pg_url: str, topic_prefix: str,
                                           tmp_path: Path) -> None:
    topics = Topics.with_prefix(topic_prefix)
    ensure_topics(broker.bootstrap_servers, topics.all(), partitions=1)
    create_ingest_schema(pg_url)
    engine = make_engine(pg_url)
    repo = Repository(engine)
    group = f"g-{uuid.uuid4().hex[:6]}"
    produce(broker.bootstrap_servers, [
        *[(topics.inference, b"m-v1", raw(inference_dict(i))) for i in range(3)],
        *[(topics.inference, b"m-v1", big(i)) for i in (10, 11)],
        (topics.inference, b"m-v1", b'{"schema_version": 1, "request_id": "r12",'),
    ])
    strict = make_ingest_consumer(broker.bootstrap_servers, topics, repo, CollectorRegistry(), group,
                                  max_event_bytes=1024, dead_letter_value_cap_bytes=65536)
    with running(strict):
        wait_for(lambda: repo.counts()["dead_letter"] == 3 and repo.counts()["inference_log"] == 3, 60,
                 "3 rows and 3 dead letters")

    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=broker.bootstrap_servers, topics=TopicSettings(
            inference=topics.inference, feedback=topics.feedback, promotions=topics.promotions)),
        database=DatabaseSettings(url=SecretStr(pg_url)),
        ingest=IngestSettings(max_event_bytes=4096),
    )
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"kafka": json.loads(settings.kafka.model_dump_json())}))
    env = {"SLICEWATCH_DATABASE_URL": pg_url}

    listed = runner.invoke(app, ["dlq", "list", "--config", str(config), "--format", "json"], env=env)
    assert listed.exit_code == 0, listed.output
    groups = {g["error_class"]: g["count"] for g in json.loads(listed.output)}
    assert groups == {"oversized": 2, "invalid_json": 1}

    dry = redrive_dead_letters(settings, 1.0, dry_run=True)
    assert len(dry.ready) == 2 and len(dry.skipped) == 1
    [why] = dry.skipped.values()
    assert why.startswith("still rejected: json/invalid_json")
    # under the old limit nothing is ready: the cause is not fixed
    old = settings.model_copy(update={"ingest": IngestSettings(max_event_bytes=1024)})
    assert redrive_dead_letters(old, 1.0, dry_run=True).ready == []

    sent = runner.invoke(app, ["dlq", "redrive", "--config", str(config), "--error-class", "oversized",
                               "--format", "json"], env={**env, "SLICEWATCH__INGEST__MAX_EVENT_BYTES": "4096"})
    assert sent.exit_code == 0, sent.output
    assert len(json.loads(sent.output)["sent"]) == 2
    # sent once: marked re-driven, not sent again unless asked
    assert redrive_dead_letters(settings, 2.0).ready == []
    assert len(redrive_dead_letters(settings, 3.0, again=True).ready) == 2  # sent a second time

    fixed = make_ingest_consumer(broker.bootstrap_servers, topics, repo, CollectorRegistry(), group,
                                 max_event_bytes=4096)
    with running(fixed):
        wait_for(lambda: repo.counts()["inference_log"] == 5, 60, "the two re-driven events stored")
    assert repo.counts()["inference_log"] == 5  # the second re-drive stored nothing twice
    assert {r["request_id"] for r in repo.load_rows(None, 0, 2e9)} == {"r0", "r1", "r2", "r10", "r11"}

    shown = runner.invoke(app, ["dlq", "show", "1", "2", "3", "--config", str(config), "--format", "json"], env=env)
    assert shown.exit_code == 0, shown.output
    letters = json.loads(shown.output)
    assert all("value" not in d for d in letters)  # raw values only with --value
    assert sum(d["redriven_at"] != "-" for d in letters) == 2
    missing = runner.invoke(app, ["dlq", "show", "999", "--config", str(config)], env=env)
    assert missing.exit_code == 1 and "no dead letter 999" in missing.output
    engine.dispose()
