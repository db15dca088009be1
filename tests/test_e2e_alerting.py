"""End to end: a promotion followed by a protected-slice regression pages on-call and asks for a rollback.

Real parts only: the Tansu broker, PostgreSQL, the monitor (consumer + evaluation thread + /metrics),
Debian's Prometheus scraping it every second and evaluating the deploy rules every second, and
Debian's Alertmanager with the deploy routing delivering to a webhook inside the test. The monitor
also pushes its alerts to the same Alertmanager directly.

The stream (seeded): ``clf@v1`` serves for ~20 minutes of event time in the past (the first
``auto_reference_events`` of them become its reference), ``clf@v2`` is promoted 5 minutes ago with
``rollback_target`` ``clf@v1``, then v2 serves live traffic (``served_at`` = wall time) that is much
worse on ``domain=regulatory`` and unchanged elsewhere, with labels a second later. Expected:
the ``SlicewatchRollback`` rule fires in Prometheus, Alertmanager pages the webhook, and a firing
drift event with ``action=rollback`` and ``rollback_target=clf@v1`` appears on ``drift-events``.
Prints the delay from the first regressed event to the drift event and to the page.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from jsonschema import Draft202012Validator, FormatChecker
from kafka import KafkaConsumer, KafkaProducer
from scipy.integrate import quad
from scipy.stats import beta as beta_dist
from scipy.stats import binomtest
from sqlalchemy import select

from monitor.app import Monitor, build_monitor
from monitor.config import Settings
from monitor.embedded.tansu import TansuBroker
from monitor.store import alerts as alert_store
from monitor.store.engine import make_engine
from tests.e2e_support import Alertmanager, Prometheus, Webhook, epoch, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[1]
VALIDATOR = Draft202012Validator(
    json.loads((ROOT / "schemas" / "drift-event.v2.schema.json").read_text()), format_checker=FormatChecker()
)
V1, V2 = "clf@v1", "clf@v2"
SLICE = "domain=regulatory"
DOMAINS = np.array(["general", "support", "billing", "regulatory"])
DOMAIN_P = np.array([0.35, 0.20, 0.15, 0.30])  # regulatory over-represented so the test is fast
ACCURACY = {V1: (0.93, 0.93), V2: (0.93, 0.55)}  # (other domains, regulatory)
LABEL_FRACTION = 0.9
BAR = 0.85
HISTORY = 3000  # v1 events over 25..6 minutes ago
LIVE_RATE = 60.0  # v2 events per second of wall time
PAGE_QUIET_S = 8.0  # after the page: several 1 s group intervals and evaluations in which nothing else may page
TICK_S = 0.5  # v2 events are produced every TICK_S, their labels one tick later
DEADLINE_S = 90.0  # from the first regressed event to every expected outcome

_encode = msgspec.json.Encoder().encode


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds")


class Stream:
    """Seeded inference and feedback events for one model at given ``served_at`` times."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.seq = 0

    def events(
        self, model_id: str, served: np.ndarray
    ) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], bool, bool]]]:
        """Inferences, and per inference (label or None, is_regulatory, correct)."""
        rng, n = self.rng, len(served)
        domain = rng.choice(DOMAINS, size=n, p=DOMAIN_P)
        regulatory = domain == "regulatory"
        acc = np.where(regulatory, ACCURACY[model_id][1], ACCURACY[model_id][0])
        correct = rng.random(n) < acc
        labelled = rng.random(n) < LABEL_FRACTION
        language = rng.choice(np.array(["en", "es", "de"]), size=n, p=[0.6, 0.25, 0.15])
        tokens = np.maximum(1, rng.lognormal(6.0, 0.6, n)).astype(np.int64)
        confidence = rng.beta(8, 2, n)
        output = rng.choice(np.array(["approve", "review", "reject"]), size=n, p=[0.5, 0.3, 0.2])
        inferences, outcomes = [], []
        for i in range(n):
            self.seq += 1
            rid = f"e2e-{self.seq:08d}"
            inferences.append(
                {
                    "schema_version": 1,
                    "request_id": rid,
                    "model_id": model_id,
                    "served_at": rfc3339(float(served[i])),
                    "input_features": {
                        "domain": str(domain[i]),
                        "language": str(language[i]),
                        "tokens_in": int(tokens[i]),
                    },
                    "output": str(output[i]),
                    "confidence": round(float(confidence[i]), 4),
                    "slice": {"region": "eu"},
                    "lineage": {"prompt_template_sha": "tmpl-1", "preprocessing_ref": "prep@1"},
                }
            )
            label = {
                "schema_version": 1,
                "request_id": rid,
                "observed_at": "",
                "was_correct": bool(correct[i]),
                "source": "human",
            }
            outcomes.append((label if labelled[i] else None, bool(regulatory[i]), bool(correct[i])))
        return inferences, outcomes  # type: ignore[return-value]


def settings_for(broker: TansuBroker, prefix: str, pg_url: str, alertmanager_url: str) -> Settings:
    return Settings.model_validate(
        {
            "kafka": {
                "bootstrap_servers": broker.bootstrap_servers,
                "group_id": f"{prefix}-monitor",
                "topics": {
                    "inference": f"{prefix}-inference",
                    "feedback": f"{prefix}-feedback",
                    "promotions": f"{prefix}-promotions",
                    "drift_events": f"{prefix}-drift-events",
                },
                "session_timeout_ms": 6000,
                "heartbeat_interval_ms": 1000,
                "poll_timeout_ms": 200,
            },
            "database": {"url": pg_url},
            "stats": {
                "bucket_seconds": 60,
                "window_buckets": 30,
                "evaluate_every_s": 1,
                "allowed_lateness_s": 1800,
                "auto_reference_events": 1000,
                "min_samples": 100,
                "protected_slices": {"domain": ["regulatory"]},
                "quality_bars": {"*": {SLICE: {"accuracy": BAR}}},
            },
            "alerts": {
                "promotion_watch_s": 3600,
                "lineage_lookback_s": 1800,
                "alertmanager_url": alertmanager_url,
                "rules": {
                    "quality.accuracy_gap": {
                        "warning": 0.02,
                        "critical": 0.05,
                        "min_samples": 100,
                        "hold_evaluations": 2,
                        "clear_evaluations": 5,
                    },
                    "input.psi": {"warning": 0.2, "critical": 0.3, "min_samples": 300},
                    "output.psi": {"warning": 0.2, "critical": 0.3, "min_samples": 300},
                },
            },
            "metrics": {"host": "127.0.0.1", "port": 0},
        }
    )


@dataclass
class E2E:
    monitor: Monitor
    settings: Settings
    hook: Webhook
    am: Alertmanager
    prom: Prometheus


@pytest.fixture
def running_monitor(
    broker: TansuBroker, pg_url: str, topic_prefix: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> Iterator[E2E]:
    monkeypatch.setenv("SLICEWATCH_DATABASE_URL", pg_url)
    # INFO from the first line: the group assignment can come before the test body runs (pytest
    # keeps those records apart, as the setup phase's: caplog.get_records("setup"))
    caplog.set_level(logging.INFO, logger="monitor")
    # Alertmanager's port must be known before the monitor is built, Prometheus needs the monitor's.
    with Webhook() as hook, Alertmanager(tmp_path / "am", hook.url) as am:
        settings = settings_for(broker, topic_prefix, pg_url, am.url)
        monitor = build_monitor(settings, serve_metrics=True, create_topics=True)
        stop = threading.Event()
        thread = threading.Thread(target=monitor.run, args=(stop,), name="e2e-monitor", daemon=True)
        thread.start()
        try:
            assert monitor.metrics_server is not None
            target = f"127.0.0.1:{monitor.metrics_server.port}"
            with Prometheus(tmp_path / "prom", target, am.address) as prom:
                yield E2E(monitor, settings, hook, am, prom)
        finally:
            stop.set()
            thread.join(timeout=30)
            assert not thread.is_alive(), "monitor did not stop"


def send_all(producer: KafkaProducer, topic: str, items: list[dict[str, Any]], key: str) -> None:
    for item in items:
        producer.send(topic, key=item[key].encode(), value=_encode(item))


def test_promotion_regression_pages_and_publishes_rollback(
    running_monitor: E2E, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="monitor")
    monitor, settings, hook, prom = (
        running_monitor.monitor,
        running_monitor.settings,
        running_monitor.hook,
        running_monitor.prom,
    )
    print("\nconfig changes vs deploy/:", "; ".join(running_monitor.am.changes + prom.changes))
    topics = settings.kafka.topics
    bootstrap = settings.kafka.bootstrap_servers
    stream = Stream(seed=20261122)
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    drift = KafkaConsumer(
        topics.drift_events,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    db = make_engine(pg_url)
    traffic_stop = threading.Event()
    traffic: threading.Thread | None = None
    try:
        wait_until(prom.targets_up, 30, what="Prometheus scraping the monitor")

        # ---- v1's history: its first 1000 events become the reference, its labels the rollback oracle
        t0 = time.time()
        served = np.sort(t0 - 360 - stream.rng.uniform(0, 19 * 60, HISTORY))
        inferences, outcomes = stream.events(V1, served)
        send_all(producer, topics.inference, inferences, "model_id")
        producer.flush()
        labels = []
        for (label, _, _), ts in zip(outcomes, served, strict=True):
            if label is not None:
                labels.append({**label, "observed_at": rfc3339(min(float(ts) + 120, t0))})
        send_all(producer, topics.feedback, labels, "request_id")
        producer.flush()
        expected_v1 = np.mean([c for label, reg, c in outcomes if label is not None and reg])  # numpy oracle

        def v1_ready() -> bool:
            acc = alert_store.slice_accuracy(db, V1, SLICE, t0 - 3600, t0)
            return monitor.drift.reference(V1) is not None and acc is not None and bool(abs(acc - expected_v1) < 1e-9)

        wait_until(v1_ready, 60, what="v1 reference built and v1 labels joined")
        # the consumer has joined its group and written: ready (a stable membership, no paused write,
        # the database answering); /readyz is what the Kubernetes manifests probe
        assert monitor.metrics_server is not None
        readyz = f"http://127.0.0.1:{monitor.metrics_server.port}/readyz"

        def ready() -> bool:
            try:
                return bool(urllib.request.urlopen(readyz, timeout=5).status == 200)
            except urllib.error.HTTPError:
                return False

        wait_until(ready, 30, what="/readyz 200")
        assert monitor.consumer is not None and monitor.consumer.readiness() is None

        # ---- the promotion, 5 minutes ago
        promotion = {
            "schema_version": 1,
            "model_id": V2,
            "promoted_at": rfc3339(t0 - 300),
            "rollback_target": V1,
            "alias": "clf@prod",
            "traffic_fraction": 1.0,
        }
        producer.send(topics.promotions, key=V2.encode(), value=_encode(promotion))
        producer.flush()
        wait_until(
            lambda: V2 in monitor.pipeline.promotions and monitor.drift.reference(V2) is not None,
            30,
            what="promotion consumed and v1's reference inherited by v2",
        )

        # ---- v2 live traffic, regressed on the regulatory slice; labels one tick later
        first_regressed: list[float] = []
        v2_regulatory: list[bool] = []  # correctness of the labelled regulatory v2 predictions, as produced

        def live() -> None:
            # A fixed number of events per tick keeps the sequence of events seeded; only served_at is wall time.
            per_tick = int(LIVE_RATE * TICK_S)
            pending: list[tuple[dict[str, Any], bool]] = []
            while not traffic_stop.wait(TICK_S):
                now = time.time()
                infs, outs = stream.events(V2, np.sort(stream.rng.uniform(now - TICK_S, now, per_tick)))
                send_all(producer, topics.inference, infs, "model_id")
                if not first_regressed:
                    first_regressed.append(time.time())
                v2_regulatory.extend(label["was_correct"] for label, regulatory in pending if regulatory)
                labels = [{**label, "observed_at": rfc3339(now)} for label, _ in pending]
                send_all(producer, topics.feedback, labels, "request_id")
                producer.flush()
                pending = [(label, regulatory) for label, regulatory, _ in outs if label is not None]

        traffic = threading.Thread(target=live, name="e2e-traffic", daemon=True)
        traffic.start()
        wait_until(lambda: first_regressed, 10, what="first regressed event produced")
        start = first_regressed[0]

        # (3) the drift event on drift-events, read back from the broker
        found: list[tuple[str, dict[str, Any], float, float]] = []

        def drift_event() -> bool:
            for records in drift.poll(timeout_ms=500).values():
                for r in records:
                    found.append((r.key.decode(), json.loads(r.value), time.time(), r.timestamp / 1000))
            return any(e["action"] == "rollback" and e["state"] == "firing" for _, e, _, _ in found)

        wait_until(drift_event, DEADLINE_S, interval_s=0, what="rollback drift event on drift-events")
        key, event, seen_at, kafka_ts = next((k, e, s, t) for k, e, s, t in found if e["action"] == "rollback")
        errors = sorted(VALIDATOR.iter_errors(event), key=str)
        assert not errors, [e.message for e in errors]
        assert key == V2 and event["model_id"] == V2
        assert event["state"] == "firing" and event["signal"] == "slice" and event["slice"] == SLICE
        # the incident's first event on the topic is its opening (one evaluation may also update
        # and escalate it: the outbox publishes them in that order), and every event of v2 so far is
        # a transition of that one incident
        v2_events = [e for _, e, _, _ in found if e["model_id"] == V2]
        assert v2_events[0]["kind"] == "opened" and len(v2_events[0]["members"]) == 1
        assert {e["incident_id"] for e in v2_events} == {event["incident_id"]}
        assert event["rollback_target"] == V1
        rule = settings.alerts.rules[f"quality.{event['statistic']}"]
        assert event["value"] > event["threshold"] == rule.threshold(event["severity"])
        # Oracles on the labelled v2 regulatory predictions counted, i.e. the first n such labels
        # produced (one partition, produced in order): whichever quality statistic fired first
        n = event["window"]["sample_count"]
        assert rule.min_samples <= n <= len(v2_regulatory)
        k = sum(v2_regulatory[:n])
        if event["statistic"] == "accuracy_gap":  # bar - accuracy, significant by the exact binomial test
            assert event["value"] == pytest.approx(BAR - k / n, abs=1e-9), (k, n)
            assert binomtest(k, n, BAR, alternative="less").pvalue < settings.stats.alpha
        else:  # bar_evidence: log10 of the Beta(30 bar, 30 (1 - bar)) mixture on [0, bar], by quadrature
            assert event["statistic"] == "bar_evidence"
            a, b = 30 * BAR, 30 * (1 - BAR)
            num = quad(lambda q: q**k * (1 - q) ** (n - k) * beta_dist.pdf(q, a, b), 0, BAR, limit=200)[0]
            want = math.log10(num / beta_dist.cdf(BAR, a, b) / (BAR**k * (1 - BAR) ** (n - k)))
            assert event["value"] == pytest.approx(want, rel=1e-6), (k, n)
        with db.connect() as conn:
            stored = conn.execute(
                select(alert_store.drift_event.c.payload).where(alert_store.drift_event.c.event_id == event["event_id"])
            ).scalar_one()
        assert stored == event
        fired_at = epoch(event["fired_at"])
        assert start - 1 <= fired_at <= seen_at

        # (1) Prometheus scrapes the incident; its fallback rules stay silent while the push is up
        def scraped() -> dict[str, Any] | None:
            return next(
                (r for r in prom.query("slicewatch_incident_state")
                 if r["metric"].get("model_id") == V2 and r["metric"].get("routing") == "page"),
                None,
            )

        series = wait_until(scraped, DEADLINE_S - (time.time() - start), what="slicewatch_incident_state scraped")
        assert series["metric"]["incident_id"] == event["incident_id"] and series["metric"]["action"] == "rollback"

        # (2) Alertmanager pages the webhook once for the incident: the monitor's push
        def paged() -> list[Any] | None:
            page = [d for d in hook.deliveries if d.path == "/page" and any(
                a["status"] == "firing" and a["labels"].get("model_id") == V2 for a in d.body.get("alerts", []))]
            return page or None

        first_page = wait_until(paged, DEADLINE_S - (time.time() - start), what="page delivered")[0]
        (alert,) = [a for a in first_page.body["alerts"] if a["labels"].get("model_id") == V2]
        assert alert["labels"]["alertname"] == "SlicewatchIncident"
        assert alert["labels"]["incident_id"] == event["incident_id"]
        assert alert["labels"]["rollback_target"] == V1 and alert["labels"]["action"] == "rollback"
        assert alert["annotations"]["runbook_url"].endswith("/rollback.md")
        direct_at = first_page.received_at
        # one more group interval (shortened to 1 s) and the fallback rules' "for": nothing else pages
        time.sleep(PAGE_QUIET_S)
        pages = [d for d in hook.deliveries if d.path == "/page" and any(
            a["labels"].get("model_id") == V2 and a["status"] == "firing" for a in d.body.get("alerts", []))]
        assert len(pages) == 1, [d.body for d in pages]
        assert not [a for a in prom.alerts() if a["labels"]["alertname"].startswith("SlicewatchIncident")]
        assert not [a for d in hook.deliveries if d.path == "/ticket" for a in d.body.get("alerts", [])
                    if a["labels"].get("model_id") == V2]
        assert not [a for d in hook.deliveries for a in d.body.get("alerts", []) if a["labels"].get("model_id") == V1]
        # what `run` tells the operator at INFO: the assignment, each drift event published (ids and
        # names, never a request id or a feature value)
        # the monitor starts in the fixture: what it logged before the test body is the setup phase's
        records = caplog.get_records("setup") + caplog.get_records("call")
        infos = [r.getMessage() for r in records if r.levelno >= logging.INFO and r.name.startswith("monitor")]
        assert any(m.startswith(f"group {settings.kafka.group_id}: assigned ") and f"{topics.inference}[" in m
                   for m in infos), infos
        published = [m for m in infos if m.startswith("drift event ") and " published: " in m]
        assert any(f" {V2} " in m and "action=rollback" in m for m in published), published
        assert not [m for m in infos if "e2e-" in m or "request_id" in m], "a request id reached the log"
        print(
            f"\nfirst regressed event produced -> drift event on the topic: {seen_at - start:.1f} s "
            f"(fired_at +{fired_at - start:.1f} s, Kafka timestamp +{kafka_ts - start:.1f} s); "
            f"-> page at the webhook (the one notification of the incident): +{direct_at - start:.1f} s"
        )
    except BaseException:
        print("--- prometheus log ---\n" + prom.log_tail())
        print("--- alertmanager log ---\n" + running_monitor.am.log_tail())
        raise
    finally:
        traffic_stop.set()
        if traffic is not None:
            traffic.join(timeout=10)
        drift.close()
        producer.close(timeout=5)
        db.dispose()
