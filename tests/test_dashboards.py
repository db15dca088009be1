"""Grafana dashboards: queries parse (promtool), use only exported metrics, variables resolve."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.metrics_fixtures import exported_metric_names, full_registry

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = sorted((ROOT / "dashboards").glob("*.json"))
GRAFANA_BUILTINS = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h", "__range_s": "3600",
                    "__url_time_range": "from=now-1h&to=now"}  # the last one: data links only
# Series Prometheus itself attaches to every scrape target.
PROMETHEUS_SERIES = {"up"}
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "offset", "bool", "le", "inf", "nan",
}  # fmt: skip
VAR = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in board.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def exprs(board: dict[str, Any]) -> list[str]:
    """Every PromQL query: the panels' targets and the annotations'."""
    out = [t["expr"] for p in panels(board) for t in p.get("targets", []) if t.get("expr")]
    return out + [a["expr"] for a in board.get("annotations", {}).get("list", []) if a.get("expr")]


def used_vars(text: str) -> set[str]:
    return {a or b for a, b in VAR.findall(text)}


def substitute(expr: str) -> str:
    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        return GRAFANA_BUILTINS.get(name, "x")

    return VAR.sub(repl, expr)


def metric_names(expr: str) -> set[str]:
    """Identifiers that are metric names: drop strings, label matchers, grouping clauses, ranges and
    function calls; what is left (minus PromQL keywords and numbers) names series."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", "", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    e = re.sub(r"\[[^\]]*\]", "", e)
    e = re.sub(r"\b[a-zA-Z_]\w*\s*\(", "(", e)
    words = set(re.findall(r"\b[a-zA-Z_:][\w:]*\b", e))
    return {w for w in words if w.lower() not in PROMQL_WORDS}


def base_name(name: str) -> str:
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


@pytest.fixture(scope="module")
def exported() -> set[str]:
    registry, _, _ = full_registry()
    names = exported_metric_names(registry)
    return names | {base_name(n) for n in names}


def test_there_are_the_five_dashboards() -> None:
    uids = {json.loads(p.read_text())["uid"] for p in DASHBOARDS}
    assert uids == {
        "slicewatch-fleet",
        "slicewatch-model",
        "slicewatch-slices",
        "slicewatch-alerts",
        "slicewatch-health",
    }


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_queries_use_only_exported_metrics(path: Path, exported: set[str]) -> None:
    board = json.loads(path.read_text())
    queries = exprs(board) + [
        v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        for v in board["templating"]["list"]
        if v["type"] == "query"
    ]
    assert queries
    for q in queries:
        q = re.sub(r"^label_values\((.*),\s*\w+\)$", r"\1", q)
        names = metric_names(substitute(q))
        assert names, q
        for name in names:
            assert base_name(name) in exported or name in PROMETHEUS_SERIES, f"{path.name}: {name} in {q}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_template_variables_resolve(path: Path) -> None:
    board = json.loads(path.read_text())
    defined = {v["name"] for v in board["templating"]["list"]}
    used = (used_vars(json.dumps(board["panels"])) | used_vars(json.dumps(board["templating"]["list"]))
            | used_vars(json.dumps(board.get("annotations", {}))))
    unknown = used - defined - set(GRAFANA_BUILTINS)
    assert not unknown, f"{path.name}: undefined variables {sorted(unknown)}"
    ids = [p["id"] for p in panels(board)]
    assert len(ids) == len(set(ids))
    for p in panels(board):
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "${datasource}" and p["targets"], p["title"]


def test_every_query_parses_with_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: run scripts/system-deps.sh"
    rules = []
    for path in DASHBOARDS:
        for i, expr in enumerate(exprs(json.loads(path.read_text()))):
            rules.append({"record": f"dashboard:{path.stem.replace('-', '_')}:{i}", "expr": substitute(expr)})
    assert len(rules) > 30
    file = tmp_path / "dashboards.rules.yml"
    file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(file)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_metric_name_extraction() -> None:
    expr = 'histogram_quantile(0.99, sum by (le) (rate(a_bucket{x=~"y|z"}[5m]))) / ignoring(slice) b'
    assert metric_names(expr) == {"a_bucket", "b"}


def test_grafana_provisioning_files() -> None:
    base = ROOT / "deploy" / "grafana" / "provisioning"
    ds = yaml.safe_load((base / "datasources" / "slicewatch.yml").read_text())
    assert ds["apiVersion"] == 1 and ds["datasources"][0]["type"] == "prometheus"
    assert ds["datasources"][0].get("isDefault") is not True  # never take over a Grafana's default
    prov = yaml.safe_load((base / "dashboards" / "slicewatch.yml").read_text())
    (provider,) = prov["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")


def rule_of(expr: str) -> str | None:
    """``signal.statistic`` a drift or quality query selects exactly (None: several or none)."""
    m = re.match(r"^.*?\b(slicewatch_drift_statistic|slicewatch_quality)\{([^}]*)\}", expr, re.S)
    if m is None:
        return None
    labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
    signal = "quality" if m.group(1) == "slicewatch_quality" else labels.get("signal")
    statistic = labels.get("statistic")
    if statistic is None:
        alternatives = re.search(r'statistic=~"([\w|]+)"', m.group(2))
        statistic = alternatives.group(1).split("|")[0] if alternatives else None
    return f"{signal}.{statistic}" if signal and statistic else None


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_panels_have_descriptions_thresholds_and_annotations(path: Path) -> None:
    """Issue 13, part 4: a description on every panel; a drift or quality panel whose statistic has
    an alert rule draws that rule's exported thresholds (``slicewatch_alert_threshold``); promotions
    and alert firing/resolution are annotations."""
    from monitor.alerts.rules import DEFAULT_RULES

    board = json.loads(path.read_text())
    for p in panels(board):
        if p["type"] == "row":
            continue
        assert p.get("description"), f"{path.stem}: panel {p['title']!r} has no description"
        queries = [t.get("expr", "") for t in p.get("targets", [])]
        ruled = {r for r in map(rule_of, queries) if r in DEFAULT_RULES or (r and "$statistic" in r)}
        if ruled and p["type"] == "timeseries":
            drawn = [q for q in queries if "slicewatch_alert_threshold" in q]
            assert drawn, f"{path.stem}: {p['title']!r} ({ruled}) draws no thresholds"
            for rule in ruled:
                assert any(rule.replace("$statistic", "") in q for q in drawn), (p["title"], rule, drawn)
    names = {a["name"] for a in board["annotations"]["list"]}
    assert {"Promotions", "Alerts firing / resolved"} <= names


def test_the_fleet_links_to_the_model_and_slice_views() -> None:
    fleet = json.loads((ROOT / "dashboards" / "slicewatch-fleet.json").read_text())
    uids = {json.loads(p.read_text())["uid"] for p in DASHBOARDS}
    linked = [p for p in panels(fleet) if p.get("fieldConfig", {}).get("defaults", {}).get("links")]
    assert len(linked) >= 5
    for p in linked:
        for link in p["fieldConfig"]["defaults"]["links"]:
            # a series' label (time series) or a table row's field (tables)
            target = re.match(r"^/d/([\w-]+)\?var-model_id=\$\{__(?:field\.labels|data\.fields)\.model_id\}",
                              link["url"])
            assert target is not None and target.group(1) in uids, link["url"]
