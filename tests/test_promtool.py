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
        # monitor health from Prometheus: routing decides, severity is the conventional one
        (["alertname=SlicewatchMonitorDown", "severity=critical", "routing=page", "job=slicewatch"], "page"),
        (["alertname=SlicewatchMonitorAbsent", "severity=critical", "routing=page", "job=slicewatch"], "page"),
        (["alertname=SlicewatchConsumerPaused", "severity=warning", "routing=ticket", "job=slicewatch"], "ticket"),
        (["alertname=SlicewatchDeadLetters", "severity=warning", "routing=ticket", "topic=t"], "ticket"),
        # incidents, pushed by the monitor or (fallback) from Prometheus: the routing label decides
        (["alertname=SlicewatchIncident", "routing=page", "action=rollback", "signal=slice", "model_id=m"], "page"),
        (["alertname=SlicewatchIncident", "routing=page", "action=retrain", "signal=slice", "model_id=m"], "page"),
        (["alertname=SlicewatchIncident", "routing=ticket", "action=retrain", "signal=input", "model_id=m"], "ticket"),
        (["alertname=SlicewatchIncidentPage", "severity=critical", "routing=page", "model_id=m"], "page"),
        (["alertname=SlicewatchIncidentTicket", "severity=warning", "routing=ticket", "model_id=m"], "ticket"),
    ],
)
def test_alertmanager_routes(labels: list[str], receiver: str) -> None:
    out = run(tool("amtool"), "config", "routes", "test", f"--config.file={AM}", *labels, stdout_only=True)
    assert out.strip() == receiver


def rules() -> list[dict]:
    import yaml

    groups = yaml.safe_load((PROM / "rules" / "slicewatch.rules.yml").read_text())["groups"]
    return [r for g in groups for r in g["rules"]]


def test_every_rule_follows_the_conventions() -> None:
    """Issue 13, part 4: severity critical|warning, a routing (or one from its series: the incident
    fallbacks keep the incident's), summary, description and a runbook_url into docs/runbooks/ whose
    file (and anchor) exist; a ``for:`` on every rule (one scrape never pages)."""
    import re

    for r in rules():
        assert r["labels"]["severity"] in ("critical", "warning"), r["alert"]
        assert r["labels"].get("routing") in ("page", "ticket") or "routing" in r["expr"], r["alert"]
        ann = r["annotations"]
        assert ann["summary"] and ann["description"], r["alert"]
        assert ann["runbook_url"].startswith("docs/runbooks/"), r["alert"]
        assert r.get("for"), r["alert"]
        parts = re.split(r"\{\{.*?\}\}", ann["runbook_url"])  # a template picks one of its pages
        targets = [parts[0] + p + parts[-1] for p in parts[1:-1] if p] if len(parts) > 1 else parts
        for target in targets:
            page, _, anchor = target.partition("#")
            text = (ROOT / page).read_text()
            if anchor:
                assert any(line.startswith("#") and line.strip("# ").lower() == anchor for line in text.splitlines()), \
                    f"{r['alert']}: no heading for #{anchor} in {page}"


def test_every_rule_fires_in_the_promtool_unit_tests() -> None:
    import yaml

    fired = set()
    for path in (ROOT / "tests" / "rules").glob("*.test.yml"):
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                if case.get("exp_alerts"):
                    fired.add(case["alertname"])
    assert {r["alert"] for r in rules()} <= fired


def test_the_prometheusrule_carries_the_same_groups() -> None:
    """deploy/k8s/prometheusrule.yaml is generated from the rules file; regenerate with
    ``scripts/prometheusrule.py`` when they differ."""
    import importlib.util

    import yaml

    spec = importlib.util.spec_from_file_location("prometheusrule", ROOT / "scripts" / "prometheusrule.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    shipped = (ROOT / "deploy" / "k8s" / "prometheusrule.yaml").read_text()
    assert shipped == mod.render(), "deploy/k8s/prometheusrule.yaml is stale: run scripts/prometheusrule.py"
    doc = yaml.safe_load(shipped)
    assert doc["kind"] == "PrometheusRule" and doc["apiVersion"] == "monitoring.coreos.com/v1"
    assert doc["spec"]["groups"] == yaml.safe_load((PROM / "rules" / "slicewatch.rules.yml").read_text())["groups"]
