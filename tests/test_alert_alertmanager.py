"""Direct push of incidents to a real Alertmanager (Debian's prometheus-alertmanager) routed by deploy/alertmanager.

The deploy config is used as is, except that the webhook URLs point at a receiver inside the test
and the group timings are shortened.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from monitor.alerts.incidents import Incident, IncidentTracker
from monitor.alerts.sinks.alertmanager import AlertmanagerSink
from monitor.alerts.state import AlertState, Transition
from monitor.embedded.ports import free_port, wait_for_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"


def alertmanager_binary() -> str:
    found = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    assert found, "prometheus-alertmanager missing: run scripts/system-deps.sh"
    return found


class Webhook:
    def __init__(self) -> None:
        self.received: list[tuple[str, dict]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append((self.path, json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alerts(self, path: str) -> list[dict]:
        return [a for p, body in self.received if p == path for a in body["alerts"]]


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[tuple[str, Webhook]]:
    hook = Webhook()
    config = yaml.safe_load(CONFIG.read_text())
    for receiver in config["receivers"]:
        for wh in receiver["webhook_configs"]:
            wh["url"] = f"http://127.0.0.1:{hook.port}/{receiver['name']}"

    def fast(route: dict) -> None:
        route.update(group_wait="1s", group_interval="1s")
        for child in route.get("routes", []):
            fast(child)

    fast(config["route"])
    path = tmp_path / "am.yml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    proc = subprocess.Popen(
        [
            alertmanager_binary(),
            f"--config.file={path}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, timeout_s=30)
        yield f"http://127.0.0.1:{port}", hook
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        hook.server.shutdown()


def incident(model: str, signal: str, action: str, severity: str, now: float, **kw: object) -> Incident:
    """The incident one firing alert opens (as the pipeline's tracker builds it)."""
    a = AlertState(
        fingerprint=f"{model}-{signal}",
        alertname={"slice": "SlicewatchSliceRegression", "input": "SlicewatchInputDrift"}[signal],
        model_id=model,
        slice="domain=tax" if signal == "slice" else "all",
        signal=signal,
        feature="was_correct" if signal == "slice" else "x",
        statistic="accuracy_gap" if signal == "slice" else "psi",
        state="firing",
        severity=severity,
        active_since=now - 30,
        last_evaluated_at=now,
        value=0.1,
        threshold=0.05,
        sample_count=400,
        window_start=now - 600,
        window_end=now,
        action=action,
        actions=(action,),
        fired_at=now - 15,
        **kw,  # type: ignore[arg-type]
    )
    (t,) = IncidentTracker().update([Transition(a.fingerprint, "pending", "firing", now, a)], now)
    return t.incident


def active(url: str) -> list[dict]:
    with urllib.request.urlopen(f"{url}/api/v2/alerts?active=true&inhibited=true&silenced=false") as r:
        return list(json.load(r))


def wait_until(pred: object, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return
        time.sleep(0.2)


def test_push_routes_pages_and_tickets_inhibits_and_expires(alertmanager: tuple[str, Webhook]) -> None:
    url, hook = alertmanager
    now = time.time()
    sink = AlertmanagerSink(url, ttl_s=6)
    alerts = [
        incident("m2", "slice", "rollback", "critical", now, rollback_target="m1"),
        incident("m2", "input", "retrain", "warning", now),  # a ticket, inhibited by m2's paging incident
        incident("m3", "input", "retrain", "warning", now),
    ]
    # the rollback arrives one evaluation before the tickets (Alertmanager's inhibitor learns about
    # source alerts asynchronously; with the deploy config's 30 s group_wait this never matters)
    assert sink.push(alerts[:1], now) == 1
    wait_until(lambda: active(url))
    time.sleep(0.5)
    assert sink.push(alerts, now) == 3

    listed = active(url)
    ends = {(a["labels"]["model_id"], a["annotations"]["signal"]): a["endsAt"] for a in listed}
    assert len(ends) == 3
    # endsAt = now + ttl: Alertmanager resolves them itself if the monitor stops pushing
    for value in ends.values():
        t = time.mktime(time.strptime(value[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
        assert abs(t - (now + 6)) < 2

    wait_until(lambda: hook.alerts("/page") and hook.alerts("/ticket"))
    time.sleep(1.5)  # one more group interval: an inhibited alert would have arrived by now
    page = [(a["labels"]["model_id"], a["labels"]["action"]) for a in hook.alerts("/page")]
    ticket = [
        (a["labels"]["model_id"], a["annotations"]["signal"]) for a in hook.alerts("/ticket") if a["status"] == "firing"
    ]
    assert ("m2", "rollback") in page
    assert ("m3", "input") in ticket and ("m2", "input") not in ticket
    first = hook.alerts("/page")[0]
    assert first["labels"]["rollback_target"] == "m1" and first["labels"]["alertname"] == "SlicewatchIncident"
    assert first["labels"]["incident_id"] == alerts[0].incident_id
    assert first["annotations"]["runbook_url"] == "docs/runbooks/rollback.md"

    # stop pushing: after endsAt the alerts resolve without the monitor
    wait_until(lambda: any(a["status"] == "resolved" for a in hook.alerts("/page")), timeout_s=20)
    assert any(a["status"] == "resolved" and a["labels"]["model_id"] == "m2" for a in hook.alerts("/page"))
