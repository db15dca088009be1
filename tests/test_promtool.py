"""deploy/prometheus and deploy/alertmanager checked by the real tools (Debian's prometheus packages)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROM = ROOT / "deploy" / "prometheus"
AM = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"


def tool(name: str) -> str:
    found = shutil.which(name)
    assert found, f"{name} missing: run scripts/system-deps.sh"
    return found


def run(*args: str, stdout_only: bool = False) -> str:
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout if stdout_only else result.stdout + result.stderr


def test_prometheus_config_is_valid() -> None:
    out = run(tool("promtool"), "check", "config", str(PROM / "prometheus.yml"))
    assert "SUCCESS" in out


def test_rules_are_valid() -> None:
    rules = sorted((PROM / "rules").glob("*.yml"))
    assert rules
    out = run(tool("promtool"), "check", "rules", *map(str, rules))
    assert "SUCCESS" in out


def test_rule_unit_tests_pass() -> None:
    tests = sorted((ROOT / "tests" / "rules").glob("*.test.yml"))
    assert tests
    out = run(tool("promtool"), "test", "rules", *map(str, tests))
    assert "SUCCESS" in out and "FAILED" not in out


def test_alertmanager_config_is_valid() -> None:
    out = run(tool("amtool"), "check-config", str(AM))
    assert "SUCCESS" in out


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        # monitor health from Prometheus
        (["alertname=SlicewatchMonitorDown", "severity=page", "job=slicewatch"], "page"),
        (["alertname=SlicewatchConsumerPaused", "severity=ticket", "job=slicewatch"], "ticket"),
        # incidents, pushed by the monitor or (fallback) from Prometheus: the routing label decides
        (["alertname=SlicewatchIncident", "routing=page", "action=rollback", "signal=slice", "model_id=m"], "page"),
        (["alertname=SlicewatchIncident", "routing=page", "action=retrain", "signal=slice", "model_id=m"], "page"),
        (["alertname=SlicewatchIncident", "routing=ticket", "action=retrain", "signal=input", "model_id=m"], "ticket"),
        (["alertname=SlicewatchIncidentPage", "severity=page", "routing=page", "model_id=m"], "page"),
        (["alertname=SlicewatchIncidentTicket", "severity=ticket", "routing=ticket", "model_id=m"], "ticket"),
    ],
)
def test_alertmanager_routes(labels: list[str], receiver: str) -> None:
    out = run(tool("amtool"), "config", "routes", "test", f"--config.file={AM}", *labels, stdout_only=True)
    assert out.strip() == receiver
