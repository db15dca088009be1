"""``slicewatch replay``: recorded events through the live statistics and alerting, no broker, no DB."""

from __future__ import annotations

import gc
import json
import math
from pathlib import Path

import jsonschema
import pytest

from monitor.alerts.drift_event import incidents_of
from monitor.app import replay as run_replay
from monitor.config import Settings
from monitor.demo.run import demo_config, match
from monitor.demo.traffic import INTENT_NEW, INTENT_OLD
from monitor.pipeline import fired_epoch
from tests.traffic_files import write_traffic

DEMO = Settings.model_validate(demo_config("127.0.0.1:1", "sqlite://", 0))  # the demo's settings, no broker

SCHEMA = json.loads((Path(__file__).parents[1] / "schemas" / "drift-event.v2.schema.json").read_text())


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("replay")
    inf, fb, pr, gen = write_traffic(d / "in", minutes=100, rate=14)
    settings = DEMO
    summary = run_replay(settings, inf, fb, pr, d / "out.jsonl", plot_dir=d / "plots")
    return d, settings, summary, gen


def test_every_scripted_incident_is_detected_after_onset_with_its_action(replayed) -> None:
    _, _, summary, gen = replayed
    for incident in gen.incidents:
        event = match(incident, summary.drift_events)
        assert event is not None, f"{incident.name} not detected"
        assert fired_epoch(event) >= incident.starts_at
    regression = match(gen.incidents[0], summary.drift_events)
    assert regression is not None
    assert regression["slice"] == "domain=regulatory"
    assert regression["rollback_target"] == INTENT_OLD
    template = match(gen.incidents[2], summary.drift_events)
    assert template is not None
    assert "prompt_template_sha" in {c["field"] for c in template["suspected_causes"]}


def test_the_promoted_version_is_tested_against_its_rollback_targets_own_rows(replayed) -> None:
    # the pipeline reads the target's labelled rows on the slice from inference_log at the promotion
    _, _, summary, gen = replayed
    against_target = [e for e in summary.drift_events if e["model_id"] == INTENT_NEW and any(
        (m["statistic"], m["slice"]) == ("target_evidence", "domain=regulatory") for m in e["members"])]
    assert against_target, "no evidence against the rollback target"
    first = against_target[0]
    assert first["action"] == "rollback" and first["rollback_target"] == INTENT_OLD
    assert fired_epoch(first) >= gen.incidents[0].starts_at


def test_one_incident_per_scripted_incident_and_no_other(replayed) -> None:
    _, _, summary, gen = replayed
    incidents = incidents_of(summary.drift_events)
    assert sorted(i["model_id"] for i in incidents) == sorted(i.model_id for i in gen.incidents)
    for scripted in gen.incidents:
        (mine,) = [i for i in incidents if i["model_id"] == scripted.model_id]
        assert mine["signal"] == scripted.signal or scripted.signal in {m["signal"] for m in mine["members"]}
        assert scripted.action in mine["actions"]


def test_stationary_model_raises_no_alert(replayed) -> None:
    _, _, summary, _ = replayed
    assert [e for e in summary.drift_events if e["model_id"] == INTENT_OLD] == []


def test_no_rollback_for_models_without_a_recent_promotion(replayed) -> None:
    _, _, summary, _ = replayed
    rollbacks = {e["model_id"] for e in summary.drift_events if "rollback" in e["actions"]}
    assert rollbacks <= {INTENT_NEW}


def test_output_file_holds_every_event_and_each_validates_against_the_schema(replayed) -> None:
    d, _, summary, _ = replayed
    lines = [json.loads(line) for line in (d / "out.jsonl").read_text().splitlines()]
    assert lines == json.loads(json.dumps(summary.drift_events))
    for event in lines:
        jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(event)


def test_plots_are_pngs_of_alerted_signals(replayed) -> None:
    _, _, summary, _ = replayed
    assert summary.plots
    for p in summary.plots:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_replay_is_deterministic_and_parquet_equals_jsonl(replayed, tmp_path: Path) -> None:
    _, settings, summary, _ = replayed
    inf, fb, pr, _ = write_traffic(tmp_path / "pq", minutes=100, rate=14, fmt="parquet")
    again = run_replay(settings, inf, fb, pr, tmp_path / "out.jsonl")
    assert [e["event_id"] for e in again.drift_events] == [e["event_id"] for e in summary.drift_events]
    assert again.drift_events == summary.drift_events


def test_bad_lines_are_counted_not_fatal(tmp_path: Path) -> None:
    inf = tmp_path / "inference.jsonl"
    inf.write_text('{"schema_version": 1}\nnot json\n')
    summary = run_replay(DEMO, inf, None, None, tmp_path / "o.jsonl")
    assert sum(summary.rejected.values()) == 2
    assert summary.drift_events == []


FIXTURE = Path(__file__).parent / "fixtures" / "replay_drift_events.jsonl"


def _same(a: object, b: object) -> bool:
    """Equal, floats to 1e-9 relative (the vectorized statistics sum in another order)."""
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, int | float) and isinstance(b, int | float) and math.isclose(a, b, rel_tol=1e-9,
                                                                                             abs_tol=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def test_drift_events_equal_those_of_the_evaluation_before_issue_12(tmp_path: Path) -> None:
    """The fixture holds the drift events the per-feature, sum-every-bucket evaluation gave on this
    stream (``scripts/replay_fingerprint.py OUT --minutes 180 --rate 3`` at 6eb95d0): the
    vectorized statistics, running window totals and skipped unchanged models give the same events,
    in the same order, values equal to 1e-9."""
    inf, fb, pr, _ = write_traffic(tmp_path / "in", minutes=180, rate=3)
    settings = Settings.model_validate({"stats": {"protected_slices": {"language": ["es", "ja"],
                                                                       "domain": ["regulatory"]}}})
    run_replay(settings, inf, fb, pr, tmp_path / "out.jsonl")
    got = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    want = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    assert len(want) == 10
    assert [(e["kind"], e["model_id"], e["statistic"], e["severity"]) for e in got] == \
        [(e["kind"], e["model_id"], e["statistic"], e["severity"]) for e in want]
    for g, w in zip(got, want, strict=True):
        assert _same(g, w), f"{g}\n!=\n{w}"


def test_cli_exits_1_naming_a_wrong_file_and_prints_json(tmp_path: Path) -> None:
    """An inference file passed as ``--promotions`` is refused with its name and reason (rc 1, the
    drift events still written); nothing replayed is rc 1; ``--format json`` is one JSON document."""
    from typer.testing import CliRunner

    from monitor.cli import app

    inf, fb, pr, _ = write_traffic(tmp_path / "in", minutes=12, rate=2)
    runner = CliRunner()
    base = ["replay", "--inference", str(inf), "--out", str(tmp_path / "o.jsonl")]
    wrong = runner.invoke(app, [*base, "--feedback", str(fb), "--promotions", str(inf)])
    assert wrong.exit_code == 1
    n = len(inf.read_text().splitlines())
    assert f"error: {inf} (read as promotion events): {n} of {n} events rejected (mostly missing_field)" \
        in wrong.output
    good = runner.invoke(app, [*base, "--feedback", str(fb), "--promotions", str(pr), "--format", "json"])
    assert good.exit_code == 0, good.output
    doc = json.loads(good.stdout)
    assert doc["events_in"]["inference"] == n and doc["rejected"] == {} and doc["evaluations"] > 0
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    none = runner.invoke(app, ["replay", "--inference", str(empty), "--out", str(tmp_path / "e.jsonl")])
    assert none.exit_code == 1 and "error: nothing was replayed" in none.output


def test_the_summary_stays_readable_at_80_columns_and_in_a_pipe(replayed) -> None:
    """Issue 13, part 2: model ids and rollback targets are never cut (``intent-clf@v41`` and
    ``intent-clf@v42`` stay apart), nothing is shortened to an ellipsis, and the column names are whole."""
    from io import StringIO

    from rich.console import Console

    _, _, summary, _ = replayed
    out = StringIO()
    summary.print(Console(file=out, width=80))  # what a pipe gets
    text = out.getvalue()
    assert "…" not in text
    for i in incidents_of(summary.drift_events):
        assert i["model_id"] in text
        if i.get("rollback_target"):
            assert i["rollback_target"] in text
    assert INTENT_NEW in text and INTENT_OLD in text


def test_replay_command_tunes_the_collector_from_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``slicewatch replay`` (like ``run``) applies ``ingest.gc_gen0_threshold``: start-up frozen,
    the young generation collected after that many objects; 0 leaves Python's defaults."""
    from typer.testing import CliRunner

    from monitor.app import tune_gc
    from monitor.cli import app

    gc.set_threshold(700, 10, 10)
    tune_gc(0)
    assert gc.get_threshold() == (700, 10, 10) and gc.get_freeze_count() == 0
    inf, fb, pr, _ = write_traffic(tmp_path / "in", minutes=6, rate=1)
    monkeypatch.setenv("SLICEWATCH__INGEST__GC_GEN0_THRESHOLD", "4321")
    done = CliRunner().invoke(app, ["replay", "--inference", str(inf), "--feedback", str(fb), "--promotions",
                                    str(pr), "--out", str(tmp_path / "o.jsonl"), "--format", "json"])
    assert done.exit_code == 0, done.output
    assert gc.get_threshold() == (4321, 10, 10)
    assert gc.get_freeze_count() > 0
