"""``/healthz``, ``/readyz`` and the metric conventions of the served registry (issue 13, part 3).

The monitor is wired by the composition root on an embedded SQLite store (the ``files`` source: no
consumer, so readiness is the database ping); the consumer's own readiness is exercised against
the real broker in ``test_consumer_ingest.py``-style runs elsewhere, here its problems are checked
through the server with injected checks.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from monitor.app import Sinks, build_monitor
from monitor.config import Settings
from monitor.metrics.health import CachedCheck, Health
from monitor.metrics.server import MetricsServer


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_probes_and_404_beside_metrics() -> None:
    problems: list[str | None] = [None]
    server = MetricsServer(CollectorRegistry(), host="127.0.0.1", port=0,
                           health=Health([lambda: problems[0]])).start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        assert get(f"{base}/healthz") == (200, "ok\n")
        assert get(f"{base}/readyz") == (200, "ready\n")
        problems[0] = "database unavailable: partitions paused"
        assert get(f"{base}/readyz") == (503, "database unavailable: partitions paused\n")
        assert get(f"{base}/healthz")[0] == 200  # not ready is still alive
        for path in ("/", "/metricsx", "/readyz/extra", "/favicon.ico"):
            assert get(base + path)[0] == 404
        assert get(f"{base}/metrics")[0] == 200
    finally:
        server.close()


def test_a_failing_check_is_a_problem_and_a_cached_one_is_asked_once_per_ttl() -> None:
    def boom() -> str | None:
        raise RuntimeError("secret host name")

    ok, problems = Health([boom]).ready()
    assert not ok and problems == ["readiness check failed (RuntimeError)"]
    now = [0.0]
    calls: list[int] = []
    cached = CachedCheck(lambda: calls.append(1) or "slow", ttl_s=5.0, clock=lambda: now[0])
    assert [cached() for _ in range(10)] == ["slow"] * 10 and len(calls) == 1
    now[0] = 5.0
    cached()
    assert len(calls) == 2


def test_the_wired_monitor_serves_build_info_process_metrics_thresholds_and_no_created(tmp_path: Path) -> None:
    settings = Settings.model_validate({"metrics": {"port": 0}})
    monitor = build_monitor(settings, source="files", database_url=f"sqlite:///{tmp_path / 'm.db'}",
                            sinks=Sinks(kafka=False, alertmanager=False))
    try:
        assert monitor.metrics_server is not None
        base = f"http://127.0.0.1:{monitor.metrics_server.port}"
        assert get(f"{base}/readyz") == (200, "ready\n")
        status, text = get(f"{base}/metrics")
        assert status == 200
        families = {f.name: f for f in text_string_to_metric_families(text)}
        assert {"process_cpu_seconds", "python_info", "python_gc_objects_collected"} <= set(families)
        build = families["slicewatch_build_info"].samples[0]
        assert build.name == "slicewatch_build_info" and build.labels["version"] and build.value == 1.0
        thresholds = {(s.labels["rule"], s.labels["severity"]): s.value
                      for s in families["slicewatch_alert_threshold"].samples}
        for name, rule in settings.alerts.rules.items():
            assert thresholds[(name, "warning")] == rule.warning and thresholds[(name, "critical")] == rule.critical
            assert thresholds[(name, "clear")] == rule.clear_threshold
        assert "_created" not in text
        monitor.db.dispose()  # a database that cannot be reached any more: a file that is gone
        (tmp_path / "m.db").unlink()
        (tmp_path / "m.db").mkdir()  # SQLite cannot open a directory
        status, body = 0, ""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # the ping's answer is cached for 5 s
            status, body = get(f"{base}/readyz")
            if status == 503:
                break
            time.sleep(0.5)
        assert status == 503 and body.startswith("database unreachable (")
        assert str(tmp_path) not in body
    finally:
        monitor.close()
