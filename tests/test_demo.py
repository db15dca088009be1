"""A short ``slicewatch demo``: embedded Tansu broker, SQLite, the live consumer and the scripted
incidents, each detected with the right action. Then the same traffic replayed offline gives the
same verdicts as the live run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from monitor.app import replay as run_replay
from monitor.config import Settings
from monitor.demo.run import DemoOptions, demo_config, demo_traffic, run_demo
from monitor.demo.traffic import INTENT_OLD

DEMO = Settings.model_validate(demo_config("127.0.0.1:1", "sqlite://", 0))  # the demo's settings, no broker

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_short_demo_detects_each_incident_with_its_action(tmp_path: Path) -> None:
    console = Console(file=(tmp_path / "demo.log").open("w"), width=160)
    options = DemoOptions(minutes=100, speedup=400, rate=20, workdir=tmp_path / "demo", live=False, seed=11,
                          drain_s=240)
    result = run_demo(options, console=console)
    console.file.close()
    by_name = {d.incident.name: d for d in result.detections}
    assert set(by_name) == {"promotion_regression", "tokens_tail_drift", "template_change"}
    for name, detection in by_name.items():
        assert detection.detected, f"{name} not detected:\n{(tmp_path / 'demo.log').read_text()}"
    regression = by_name["promotion_regression"].event
    assert regression is not None
    assert regression["actions"][0] == "rollback"
    assert regression["rollback_target"] == INTENT_OLD
    assert regression["slice"] == "domain=regulatory"
    template = by_name["template_change"].event
    assert template is not None and "investigate" in template["actions"]
    assert [c["field"] for c in template["suspected_causes"]] == ["prompt_template_sha"]
    assert by_name["tokens_tail_drift"].event["feature"] == "tokens_in"  # type: ignore[index]
    assert not any(e["model_id"] == INTENT_OLD and e["state"] == "firing" for e in result.drift_events)
    assert "scripted incidents" in (tmp_path / "demo.log").read_text()

    # The same events, replayed offline through the same statistics and alerting, give the same verdicts.
    gen = demo_traffic(options, result.start)
    files = {name: (tmp_path / f"{name}.jsonl").open("w") for name in ("inference", "feedback", "promotions")}
    while gen.now < result.start + options.minutes * 60:
        step = gen.step(10.0)
        for name, rows in (("inference", step.inferences), ("feedback", step.feedback),
                           ("promotions", step.promotions)):
            files[name].writelines(json.dumps(r) + "\n" for r in rows)
    for f in files.values():
        f.close()
    replayed = run_replay(DEMO, tmp_path / "inference.jsonl",
                          tmp_path / "feedback.jsonl", tmp_path / "promotions.jsonl", tmp_path / "replay.jsonl")

    def verdicts(events: list[dict]) -> set[tuple]:
        """Every member alert of every open incident, with its incident's action and target (the
        primary member may differ between the two runs when members tie; the members may not)."""
        return {(e["model_id"], m["signal"], m["slice"], m["feature"], m["statistic"], e["action"],
                 e["rollback_target"]) for e in events if e["state"] == "firing" for m in e["members"]}

    live, offline = verdicts(result.drift_events), verdicts(replayed.drift_events)
    print(f"live-only {sorted(live - offline)}\nreplay-only {sorted(offline - live)}")
    assert live == offline


def test_demo_config_file_merges_and_the_demo_prints_what_differs(tmp_path: Path) -> None:
    """``demo --config FILE`` (issue 13, part 2): the file's keys replace the demo's, its broker,
    database and topics stay the demo's; the console shows the settings that differ from the
    defaults (the 30-bucket window, accuracy_gap warning at 0.005, ...); a bad file names itself."""
    import socket

    import pytest

    from monitor.app import config_differences
    from monitor.app import demo_config_with_file as with_file
    from monitor.demo.run import _metrics_port, demo_config
    from monitor.errors import ConfigError

    base = demo_config("127.0.0.1:1", "sqlite:///x.db", 9731)
    f = tmp_path / "tune.yaml"
    f.write_text("stats:\n  window_buckets: 45\nkafka:\n  bootstrap_servers: elsewhere:9092\n"
                 "alerts:\n  rules:\n    input.psi: {warning: 0.25, critical: 0.4}\n")
    merged = with_file(base, f)
    assert merged["stats"]["window_buckets"] == 45 and merged["stats"]["evaluate_every_s"] == 30
    assert merged["kafka"]["bootstrap_servers"] == "127.0.0.1:1" and merged["database"] == base["database"]
    assert merged["alerts"]["rules"]["input.psi"] == {"warning": 0.25, "critical": 0.4}
    assert "quality.accuracy_gap" in merged["alerts"]["rules"]  # the demo's other rules stay
    text = "\n".join(config_differences(base, skip=("database.",)))
    assert "stats.window_buckets: 30" in text and "alerts.rules.quality.accuracy_gap.warning: 0.005" in text
    assert "database" not in text and "stats.evaluate_every_s: 30.0" in text
    bad = tmp_path / "bad.yaml"
    bad.write_text("alerts:\n  rules:\n    input.pssi: {warning: 1, critical: 2}\n")
    with pytest.raises(ConfigError, match=str(bad)):
        with_file(base, bad)
    with socket.socket() as held:  # the documented port busy: a free one instead, said on the console
        held.bind(("127.0.0.1", 0))
        busy = held.getsockname()[1]
        console = Console(file=(tmp_path / "c2.txt").open("w"), width=200)
        got = _metrics_port(busy, console)
        console.file.close()
    assert got != busy and f"port {busy} is in use" in (tmp_path / "c2.txt").read_text()


def test_the_live_view_keeps_model_ids_whole_at_80_columns() -> None:
    from io import StringIO

    from monitor.demo.view import render
    from monitor.snapshot import SignalValue, Snapshot

    models = ("intent-classifier@v41", "intent-classifier@v42")
    values = tuple(SignalValue(m, "all", "input", "tokens_in", "psi", 0.31, 900) for m in models)
    frame = render(Snapshot(600.0, 0.0, 600.0, values, models=models), {}, [], {"input.psi": 0.2}, "demo")
    out = StringIO()
    Console(file=out, width=80).print(frame)
    for m in models:
        assert m in out.getvalue()
