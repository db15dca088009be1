"""Launchers for the end-to-end alerting test: a real Prometheus and a real Alertmanager (Debian's
``prometheus`` and ``prometheus-alertmanager``) on 127.0.0.1, and a webhook receiver that records
what Alertmanager delivers.

The configurations are derived from the deploy files (``deploy/prometheus/prometheus.yml`` with
its rules file, ``deploy/alertmanager/alertmanager.yml``): loaded, then adjusted for the test
(loopback ports, temp storage, 1 s intervals). :attr:`changes` lists every adjustment made, so a
report can say what differs from production. Every launcher is a context manager that stops its
process even when the test fails.

Examples
--------
>>> with Webhook() as hook, Alertmanager(tmp / "am", hook.url) as am:  # doctest: +SKIP
...     with Prometheus(tmp / "prom", "127.0.0.1:9731", am.address) as prom:
...         firing = wait_until(prom.alerts, timeout_s=30, what="an alert")
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import yaml

from monitor.embedded.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"

T = TypeVar("T")


def wait_until(probe: Callable[[], T | None], timeout_s: float, interval_s: float = 0.2, what: str = "condition") -> T:
    """Poll ``probe`` until it returns something truthy (returned) or ``timeout_s`` passes (TimeoutError)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not met within {timeout_s:.0f} s")
        time.sleep(interval_s)


def epoch(text: str) -> float:
    """An RFC 3339 time with any number of fractional digits (Go writes nanoseconds) as epoch seconds.

    >>> epoch("1970-01-01T00:00:01.123456789Z")
    1.123456
    """
    m = re.fullmatch(r"(.{19})(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    if m is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    zone = "+00:00" if m[3] == "Z" else m[3]
    return datetime.fromisoformat(f"{m[1]}.{(m[2] or '0')[:6].ljust(6, '0')}{zone}").timestamp()


def http_json(url: str, timeout_s: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_s) as r:
        return json.load(r)


def binary(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise FileNotFoundError(f"none of {names} on PATH: run scripts/system-deps.sh")


@dataclass(frozen=True, slots=True)
class Delivery:
    """One POST received by the webhook: the path (receiver), the body and the wall time of arrival."""

    path: str
    body: dict[str, Any]
    received_at: float


class Webhook:
    """An HTTP server on 127.0.0.1 that records every POST (Alertmanager's webhook receiver)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._deliveries: list[Delivery] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                at = time.time()
                with outer._lock:
                    outer._deliveries.append(Delivery(self.path, json.loads(body or b"{}"), at))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, name="e2e-webhook", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries)

    def alerts(self, path: str) -> list[tuple[dict[str, Any], float]]:
        """Every alert delivered to ``path`` with the arrival time of its notification, in order."""
        return [(a, d.received_at) for d in self.deliveries if d.path == path for a in d.body.get("alerts", [])]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Webhook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Process:
    """A child process with its output in a log file; stopped with SIGTERM, then SIGKILL."""

    name = "process"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log_path = workdir / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.changes: list[str] = []

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout_s: float = 30.0) -> None:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r:
                    return bool(r.status == 200)
            except (urllib.error.URLError, OSError):
                return False

        wait_until(ready, timeout_s, interval_s=0.1, what=f"{self.name} ready")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self: _P) -> _P:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


_P = TypeVar("_P", bound=_Process)


def _shorten_route(route: dict[str, Any], interval: str) -> None:
    route.update(group_wait=interval, group_interval=interval)
    for child in route.get("routes", []) or []:
        _shorten_route(child, interval)


class Alertmanager(_Process):
    """``prometheus-alertmanager`` with the deploy routing; every webhook URL points at ``webhook_url``
    (path = receiver name, e.g. ``/page``), group_wait and group_interval are ``interval``, no cluster."""

    name = "alertmanager"

    def __init__(self, workdir: Path, webhook_url: str, interval: str = "1s", source: Path = ALERTMANAGER_CONFIG):
        super().__init__(workdir)
        config = yaml.safe_load(source.read_text())
        for receiver in config["receivers"]:
            for hook in receiver.get("webhook_configs", []):
                hook["url"] = f"{webhook_url}/{receiver['name']}"
        self.changes.append(f"webhook URLs -> {webhook_url}/<receiver name>")
        _shorten_route(config["route"], interval)
        self.changes.append(f"group_wait and group_interval of every route -> {interval}")
        self.config_path = workdir / "alertmanager.yml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    def command(self) -> list[str]:
        return [
            binary("prometheus-alertmanager", "alertmanager"),
            f"--config.file={self.config_path}",
            f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address={self.address}",
            "--cluster.listen-address=",
        ]

    def alerts(self) -> list[dict[str, Any]]:
        return list(http_json(f"{self.url}/api/v2/alerts?active=true&inhibited=true&silenced=true"))


class Prometheus(_Process):
    """``prometheus`` with the deploy scrape config and rules file; the scrape target, the Alertmanager
    target and the scrape/evaluation intervals are the test's."""

    name = "prometheus"

    def __init__(
        self,
        workdir: Path,
        scrape_target: str,
        alertmanager: str,
        interval: str = "1s",
        source: Path = PROMETHEUS_CONFIG,
    ):
        super().__init__(workdir)
        config = yaml.safe_load(source.read_text())
        config["global"].update(scrape_interval=interval, evaluation_interval=interval)
        config["rule_files"] = [str((source.parent / f).resolve()) for f in config.get("rule_files", [])]
        self.changes.append(f"global scrape and evaluation interval -> {interval}")
        self.changes.append("rule_files -> absolute paths of the deploy rule files (unchanged)")
        for am in config["alerting"]["alertmanagers"]:
            for sc in am["static_configs"]:
                sc["targets"] = [alertmanager]
        self.changes.append(f"Alertmanager target -> {alertmanager}")
        for job in config["scrape_configs"]:
            job.update(scrape_interval=interval, scrape_timeout=interval)
            for sc in job.get("static_configs", []):
                sc["targets"] = [scrape_target]
        self.changes.append(f"scrape target -> {scrape_target}, scrape_interval and scrape_timeout -> {interval}")
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    def command(self) -> list[str]:
        return [
            binary("prometheus"),
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address={self.address}",
        ]

    def alerts(self) -> list[dict[str, Any]]:
        """``/api/v1/alerts``: active (pending or firing) alerts of the rules."""
        return list(http_json(f"{self.url}/api/v1/alerts")["data"]["alerts"])

    def query(self, expr: str) -> list[dict[str, Any]]:
        q = urllib.parse.urlencode({"query": expr})
        return list(http_json(f"{self.url}/api/v1/query?{q}")["data"]["result"])

    def targets_up(self) -> bool:
        active = http_json(f"{self.url}/api/v1/targets")["data"]["activeTargets"]
        return bool(active) and all(t["health"] == "up" for t in active)
