"""The import directions of the package (README, "How it works"): arrows point inward.

Every ``import monitor.<x>`` in ``monitor/`` (module level or inside a function) is read with
``ast`` and checked against the table below: pure statistics and detectors import nothing with I/O,
the edges (ingest, store, metrics, sinks) do not import each other, and only the composition root
and the commands above it import everything.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "monitor"

BASE = {"errors", "events", "records", "snapshot"}  # plain data and the exception root
ALL = {
    "alerts", "alerts.sinks", "app", "cli", "config", "demo", "detect", "drift", "embedded", "ingest",
    "metrics", "pipeline", "reference", "replay", "stats", "store", "takeover", "api", "tables",
} | BASE
COMMANDS = {"cli", "demo"}

ALLOWED: dict[str, set[str]] = {
    **{b: BASE for b in BASE},
    "config": BASE | {"alerts"},  # settings hold the alert rules as they are (alerts.rules.Rule)
    "embedded": BASE,
    "stats": BASE,  # pure statistics
    "detect": BASE | {"stats"},  # detectors
    "drift": BASE | {"stats", "detect"},  # the windowed engine
    "alerts": BASE,  # the alert state machine, rules, actions, drift events
    "alerts.sinks": BASE | {"alerts"},  # edges: Kafka, Alertmanager
    "ingest": BASE,  # edge: the consumer (the store comes in through its BatchStore protocol)
    "store": BASE | {"stats", "alerts"},  # edge: persists profiles and alert states
    "metrics": BASE | {"alerts"},  # edge: the scrape-time collector
    "pipeline": BASE | {"alerts", "store"},
    "takeover": BASE | {"stats", "drift", "pipeline", "store"},
    "replay": BASE | {"alerts", "ingest", "pipeline", "stats", "tables"},  # source: recorded files -> the pipeline
    "api": BASE | {"alerts", "drift", "stats"},  # compare(frames) for batch jobs and notebooks: no I/O
    "tables": set(),  # rich tables for terminals and pipes
    "reference": BASE | {"stats", "store"},  # edge: reference files and logged rows -> a stored profile
    "app": ALL - COMMANDS,  # the composition root: the only module (with cli) that reads settings
    "demo": ALL - {"cli", "config"},  # a command over the root: its configuration is a plain mapping
    "cli": ALL,
}

# Arrows the table forbids that the code still has (none left; issue 9 removed the last ones: demo,
# replay and reference read settings). The test fails when one is fixed and not removed here.
KNOWN: set[tuple[str, str]] = set()
FORBIDDEN_EXTRA: set[tuple[str, str]] = set()


def unit(module: str) -> str:
    parts = module.split(".")[1:]
    if parts[:2] == ["alerts", "sinks"]:
        return "alerts.sinks"
    return parts[0]


def imports(root: Path = ROOT) -> set[tuple[str, str, str]]:
    """(importing unit, imported unit, file) for every import between different units."""
    out = set()
    for path in root.rglob("*.py"):
        rel = path.relative_to(root.parent)
        if "migrations" in rel.parts or rel == Path("monitor/__init__.py"):
            continue
        src = unit(".".join(rel.with_suffix("").parts))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                if name.startswith("monitor.") and (dst := unit(name)) in ALL and dst != src:
                    out.add((src, dst, str(rel)))
    return out


def test_every_unit_is_in_the_table() -> None:
    units = {src for src, _, _ in imports()} | {dst for _, dst, _ in imports()}
    assert units <= set(ALLOWED), f"add to ALLOWED: {sorted(units - set(ALLOWED))}"


def violations(found: set[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    return sorted(
        (src, dst, f) for src, dst, f in found
        if (dst not in ALLOWED[src] or (src, dst) in FORBIDDEN_EXTRA) and (src, dst) not in KNOWN
    )


def test_imports_point_inward() -> None:
    found = imports()
    bad = violations(found)
    assert bad == [], "imports against the architecture:\n" + "\n".join(f"{f}: {s} -> {d}" for s, d, f in bad)
    still = {(s, d) for s, d, _ in found}
    fixed = KNOWN - still
    assert not fixed, f"no longer imported, remove from KNOWN: {sorted(fixed)}"


def test_the_checker_flags_a_wrong_arrow_also_inside_a_function(tmp_path: Path) -> None:
    """The alerts <-> store cycle hid one of its imports inside a function."""
    pkg = tmp_path / "monitor"
    (pkg / "stats").mkdir(parents=True)
    (pkg / "stats" / "x.py").write_text("import numpy\n\ndef f():\n    from monitor.store.alerts import y\n")
    (pkg / "drift").mkdir()
    (pkg / "drift" / "y.py").write_text("from monitor.stats.window import ModelWindow\n")
    found = imports(pkg)
    assert violations(found) == [("stats", "store", "monitor/stats/x.py")]
    assert ("drift", "stats", "monitor/drift/y.py") in found
