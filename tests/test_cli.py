"""The command line: check-config, db upgrade (SQLite and PostgreSQL), reference build (file and log)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from sqlalchemy import create_engine, inspect
from typer.testing import CliRunner

from monitor.cli import app
from monitor.config import load_settings
from monitor.errors import ConfigError
from monitor.events import InferenceEvent
from monitor.store import profiles as profile_store
from monitor.store.engine import make_engine
from monitor.store.migrate import upgrade
from monitor.store.repository import Repository

runner = CliRunner()
TABLES = {"inference_log", "model_version", "dead_letter", "pending_label", "reference_profile", "drift_alert",
          "drift_event"}


def _env(db: Path) -> dict[str, str]:
    return {"SLICEWATCH_DATABASE_URL": f"sqlite:///{db}"}


def test_check_config_accepts_the_shipped_example() -> None:
    result = runner.invoke(app, ["check-config", "deploy/config/slicewatch.yaml"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok:")


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ("stats:\n  window_buckets: 0\n", "stats.window_buckets"),
        ("kafka:\n  topics:\n    inference: 5\n    nope: 1\n", "kafka.topics.nope"),
        ("alerts:\n  rules:\n    psi: {warning: 1, critical: 2}\n", "alerts"),
        ("- a list\n", "mapping"),
    ],
)
def test_check_config_names_the_bad_key(tmp_path: Path, body: str, key: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(body)
    result = runner.invoke(app, ["check-config", str(path)])
    assert result.exit_code == 2
    assert key in result.output


def test_db_upgrade_on_sqlite_creates_every_table(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    result = runner.invoke(app, ["db", "upgrade"], env=_env(db))
    assert result.exit_code == 0, result.output
    assert set(inspect(create_engine(f"sqlite:///{db}")).get_table_names()) >= TABLES
    again = runner.invoke(app, ["db", "upgrade"], env=_env(db))  # idempotent
    assert again.exit_code == 0


@pytest.mark.integration
def test_db_upgrade_on_postgresql_creates_every_table(pg_url: str) -> None:
    result = runner.invoke(app, ["db", "upgrade", "--database-url", pg_url])
    assert result.exit_code == 0, result.output
    assert set(inspect(make_engine(pg_url)).get_table_names()) >= TABLES
    columns = {c["name"]: c for c in inspect(make_engine(pg_url)).get_columns("inference_log")}
    assert type(columns["input_features"]["type"]).__name__ == "JSONB"


def _reference_rows(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [
        {"language": str(rng.choice(["en", "es", "ja"], p=[0.6, 0.3, 0.1])),
         "tokens_in": float(rng.lognormal(5, 0.7)), "output": str(rng.choice(["a", "b"])),
         "confidence": float(rng.uniform()), "was_correct": bool(rng.random() < 0.9)}
        for _ in range(n)
    ]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_reference_build_from_file_matches_numpy(tmp_path: Path, fmt: str) -> None:
    rows = _reference_rows(3000, seed=5)
    frame = pl.DataFrame(rows)
    path = tmp_path / f"ref.{fmt}"
    {"csv": frame.write_csv, "jsonl": frame.write_ndjson, "parquet": frame.write_parquet}[fmt](path)
    db = tmp_path / "x.db"
    result = runner.invoke(app, ["reference", "build", "--model-id", "m@1", "--from", str(path)], env=_env(db))
    assert result.exit_code == 0, result.output
    profile = profile_store.latest_profile(make_engine(f"sqlite:///{db}"), "m@1")
    assert profile is not None
    spec = profile.feature("language")
    assert spec is not None and spec.kind == "categorical"
    counts = profile.aggregate.feature_counts("language")
    for i, cat in enumerate(spec.categories):
        assert counts[i] == sum(1 for r in rows if r["language"] == cat)
    tokens = profile.feature("tokens_in")
    assert tokens is not None and tokens.kind == "numeric"
    x = np.array([r["tokens_in"] for r in rows])
    binned = profile.aggregate.feature_counts("tokens_in")
    oracle = np.bincount(np.searchsorted(np.asarray(tokens.edges), x, side="right").clip(0, len(tokens.edges)),
                         minlength=len(tokens.edges) + 1)
    # the top edge is closed: values equal to it count in the last value bin, not overflow
    oracle[len(tokens.edges) - 1] += oracle[len(tokens.edges)]
    oracle[len(tokens.edges)] = 0
    assert binned[: len(tokens.edges) + 1].tolist() == oracle.tolist()
    assert binned.sum() == len(rows)
    assert profile.aggregate.accuracy == pytest.approx(np.mean([r["was_correct"] for r in rows]))
    # a second build of the same content does not make a new version
    again = runner.invoke(app, ["reference", "build", "--model-id", "m@1", "--from", str(path)], env=_env(db))
    assert again.exit_code == 0
    assert profile_store.latest_profile(make_engine(f"sqlite:///{db}"), "m@1").version == profile.version  # type: ignore[union-attr]


def test_reference_build_from_log(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    url = f"sqlite:///{db}"
    upgrade(url)
    rows = _reference_rows(500, seed=9)
    t0 = datetime(2026, 11, 1, tzinfo=UTC).timestamp()
    events = [
        InferenceEvent(schema_version=1, request_id=f"r{i}", model_id="m@2",
                       served_at=datetime.fromtimestamp(t0 + i, tz=UTC),
                       input_features={"language": r["language"], "tokens_in": r["tokens_in"]},
                       output=r["output"], confidence=r["confidence"])
        for i, r in enumerate(rows)
    ]
    Repository(make_engine(url)).write(events, [], [], [], t0 + 1000)
    since = datetime.fromtimestamp(t0 + 100, tz=UTC).isoformat()
    until = datetime.fromtimestamp(t0 + 400, tz=UTC).isoformat()
    result = runner.invoke(
        app, ["reference", "build", "--model-id", "m@2", "--from-log", "--since", since, "--until", until], env=_env(db)
    )
    assert result.exit_code == 0, result.output
    profile = profile_store.latest_profile(make_engine(url), "m@2")
    assert profile is not None
    assert profile.aggregate.n == 300
    empty = runner.invoke(
        app, ["reference", "build", "--model-id", "nope", "--from-log", "--since", since, "--until", until],
        env=_env(db),
    )
    assert empty.exit_code == 1 and "no rows" in empty.output


def test_reference_build_needs_exactly_one_source(tmp_path: Path) -> None:
    result = runner.invoke(app, ["reference", "build", "--model-id", "m"], env=_env(tmp_path / "x.db"))
    assert result.exit_code != 0


def test_env_overrides_and_secret_masking(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("kafka:\n  security:\n    sasl_plain_password: hunter2\n")
    settings = load_settings(path, environ={"SLICEWATCH__KAFKA__BOOTSTRAP_SERVERS": "k1:9093",
                                            "SLICEWATCH__STATS__PROTECTED_SLICES": json.dumps({"language": ["es"]})})
    assert settings.kafka.bootstrap_servers == "k1:9093"
    assert settings.stats.protected_slices == {"language": ["es"]}
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.model_dump())
    assert settings.kafka.security.client_kwargs()["sasl_plain_password"] == "hunter2"


def test_database_url_precedence(tmp_path: Path) -> None:
    secret = tmp_path / "url"
    secret.write_text("postgresql+psycopg://u@db/x\n")
    path = tmp_path / "c.yaml"
    path.write_text(f"database:\n  url_file: {secret}\n")
    assert load_settings(path, environ={}).database.resolved_url() == "postgresql+psycopg://u@db/x"
    env = {"SLICEWATCH_DATABASE_URL": "sqlite:///env.db"}
    assert load_settings(path, environ=env).database.resolved_url() == "sqlite:///env.db"
    assert load_settings(None, environ={}).database.resolved_url() == "sqlite:///slicewatch.db"


def test_secrets_are_read_once_at_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files and the environment are read by load_settings only: a rotated file or a changed variable
    after the load does not change the running settings, and a missing file is a ConfigError at load."""
    url_file, password_file = tmp_path / "url", tmp_path / "pw"
    url_file.write_text("postgresql+psycopg://u@db/x\n")
    password_file.write_text("s3cret\n")
    path = tmp_path / "c.yaml"
    path.write_text(f"database:\n  url_file: {url_file}\n"
                    f"kafka:\n  security:\n    sasl_plain_password_file: {password_file}\n")
    settings = load_settings(path, environ={})
    url_file.unlink()
    password_file.write_text("rotated\n")
    monkeypatch.setenv("SLICEWATCH_DATABASE_URL", "sqlite:///later.db")
    assert settings.database.resolved_url() == "postgresql+psycopg://u@db/x"
    assert settings.kafka.security.client_kwargs()["sasl_plain_password"] == "s3cret"
    assert "s3cret" not in repr(settings)
    with pytest.raises(ConfigError, match=r"database\.url_file"):
        load_settings(path, environ={})
    env_only = load_settings(None, environ={"SLICEWATCH_KAFKA_SASL_PASSWORD": "from-env"})
    assert env_only.kafka.security.client_kwargs()["sasl_plain_password"] == "from-env"


def test_rules_and_bars_reject_unknown_keys(tmp_path: Path) -> None:
    """A misspelt key in a rule or a quality bar is an error, not a silently ignored line."""
    for text, where in (("alerts:\n  rules:\n    input.psi: {warning: 0.1, critcal: 0.2}\n", "critcal"),
                        ("stats:\n  quality_bars:\n    '*': {all: {acuracy: 0.9}}\n", "acuracy")):
        path = tmp_path / "c.yaml"
        path.write_text(text)
        with pytest.raises(ConfigError, match=where):
            load_settings(path, environ={})


def test_a_rules_block_merges_into_the_defaults(tmp_path: Path) -> None:
    """Tuning two rules keeps the other defaults (the shipped deploy config used to drop
    quality.adwin_drift and cohort.psi by naming a few rules)."""
    from monitor.alerts.rules import DEFAULT_RULES

    path = tmp_path / "c.yaml"
    path.write_text("alerts:\n  rules:\n    input.psi: {warning: 0.1, critical: 0.15}\n"
                    "    output.js: {warning: 0.2, critical: 0.3}\n")
    rules = load_settings(path, environ={}).alerts.rules
    assert set(rules) == set(DEFAULT_RULES) | {"output.js"}
    assert (rules["input.psi"].warning, rules["input.psi"].critical) == (0.1, 0.15)
    assert rules["quality.adwin_drift"] == DEFAULT_RULES["quality.adwin_drift"]


@pytest.mark.parametrize(("name", "hint"), [
    ("input.pssi", "input.psi"), ("quailty.accuracy_gap", "quality.accuracy_gap"),
    ("output.mean_confidence_detla", "output.mean_confidence_delta"),
])
def test_check_config_rejects_unknown_rule_names_with_a_hint(tmp_path: Path, name: str, hint: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"alerts:\n  rules:\n    {name}: {{warning: 0.1, critical: 0.2}}\n")
    result = runner.invoke(app, ["check-config", str(path)])
    assert result.exit_code == 2
    assert f"unknown rule '{name}' (did you mean '{hint}'?)" in result.output
    assert str(path) in result.output


def test_check_config_rejects_warning_beyond_critical_and_names_an_env_variable(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("alerts:\n  rules:\n    quality.bar_evidence: {warning: 3, critical: 4, direction: below}\n")
    with pytest.raises(ConfigError, match="critical must be <= warning for direction 'below'"):
        load_settings(path, environ={})
    with pytest.raises(ConfigError, match=r"stats\.window_buckets: .* \(set by SLICEWATCH__STATS__WINDOW_BUCKETS\)"):
        load_settings(None, environ={"SLICEWATCH__STATS__WINDOW_BUCKETS": "many"})


def test_the_rule_catalogue_holds_every_statistic_the_engine_emits() -> None:
    """A rule may name any statistic the engine emits and nothing else: a rich stream (slices,
    labels, failure clusters, a lineage change, short windows, a canary, a cohort) and the names of
    every value of its snapshots are all in ``STATISTICS``; the default rules are in it too."""
    from monitor.alerts.rules import DEFAULT_RULES, STATISTICS
    from monitor.drift import DriftEngine
    from tests.stats_fixtures import StreamSpec, make_batch

    rng = np.random.default_rng(9)
    eng = DriftEngine(bucket_seconds=60, window_buckets=20, allowed_lateness_s=1e9, auto_reference_events=2000,
                      protected_slices={"language": ["es"], "domain": ["regulatory"]}, short_windows=(5,),
                      cohorts=[["m1", "m2"]])
    specs = [StreamSpec(model_id=m, failure_clusters=("timeout", "format"), cluster_spike=("timeout", 0.8),
                        onset=1800.0, input_shift=0.5, embedding_after_onset="e2") for m in ("m1", "m2")]
    emitted: set[tuple[str, str]] = set()
    for i in range(12):
        for spec in specs:
            events, labels = make_batch(rng, spec, 400, 300.0 * i, 300.0 * (i + 1))
            eng.observe(events, labels, 300.0 * (i + 1))
        if i == 6:
            eng.set_canary("m2", "m1")
            eng.set_target_outcomes("m2", "m1", {"all": (900, 1000), "language=es": (90, 100)})
        snap = eng.evaluate(300.0 * (i + 1))
        emitted |= {(v.signal, v.statistic) for v in snap.values}
    unknown = {f"{s}.{t}" for s, t in emitted if t not in STATISTICS.get(s, ())}
    assert not unknown, f"emitted but not in the rule catalogue: {sorted(unknown)}"
    assert len(emitted) >= 35  # 39 when written: the scenario reaches most of the catalogue
    assert all(r.statistic in STATISTICS[r.signal] for r in DEFAULT_RULES.values())


def test_run_migrates_only_when_told(tmp_path: Path) -> None:
    """``run`` refuses an empty (or older) database and names the command that migrates it; after
    ``db upgrade`` (what the systemd unit and the Kubernetes init container run first) the monitor
    is built without migrating."""
    from monitor.store.migrate import current, head

    db = tmp_path / "run.db"
    cfg = tmp_path / "c.yaml"
    cfg.write_text("kafka:\n  bootstrap_servers: 127.0.0.1:1\nmetrics:\n  port: 0\n")
    env = _env(db)
    refused = runner.invoke(app, ["run", "--config", str(cfg)], env=env)
    assert refused.exit_code == 1
    assert "schema is at revision none (empty database)" in refused.output and "slicewatch db upgrade" in refused.output
    assert current(f"sqlite:///{db}") is None  # nothing was migrated
    upgraded = runner.invoke(app, ["db", "upgrade"], env=env)
    assert upgraded.exit_code == 0, upgraded.output
    assert current(f"sqlite:///{db}") == head()
    from monitor.app import build_monitor

    monitor = build_monitor(load_settings(cfg, environ=env), migrate=False, serve_metrics=False)
    monitor.close()  # a current database is accepted without --migrate


def test_a_reference_built_while_running_is_picked_up_without_a_restart(tmp_path: Path) -> None:
    """Issue 13, part 2: a profile stored by `reference build` while the monitor runs replaces the
    engine's within REFERENCE_REFRESH_S (the store is asked for the newest content hashes); the
    monitor's own profile (same hash) is not set again, so its window is not reset."""
    from monitor.app import build_monitor
    from monitor.pipeline import REFERENCE_REFRESH_S
    from monitor.stats.columns import records_from_events
    from monitor.stats.profile_builder import build_profile_from_records
    from tests.stats_fixtures import StreamSpec, make_batch

    db = tmp_path / "r.db"
    env = _env(db)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("kafka:\n  bootstrap_servers: 127.0.0.1:1\n")
    settings = load_settings(cfg, environ=env)
    rng = np.random.default_rng(5)
    events, _ = make_batch(rng, StreamSpec(model_id="m1"), 800, 0.0, 600.0)
    first = build_profile_from_records("m1", records_from_events(events)["m1"], created_at=600.0)
    engine = make_engine(f"sqlite:///{db}")
    upgrade(f"sqlite:///{db}")
    profile_store.save_profile(engine, first)
    monitor = build_monitor(settings, migrate=False, serve_metrics=False)
    try:
        pipeline, drift = monitor.pipeline, monitor.drift
        assert drift.reference("m1").content_hash == first.content_hash
        assert pipeline.refresh_references(1000.0) == 0  # the same profile: nothing to pick up
        events2, _ = make_batch(rng, StreamSpec(model_id="m1", n_numeric=4), 800, 600.0, 1200.0)
        second = build_profile_from_records("m1", records_from_events(events2)["m1"], created_at=1200.0)
        assert second.content_hash != first.content_hash
        profile_store.save_profile(engine, second)  # what `slicewatch reference build` does
        assert pipeline.refresh_references(1000.0 + REFERENCE_REFRESH_S / 2) == 0  # not due yet
        assert drift.reference("m1").content_hash == first.content_hash
        assert pipeline.refresh_references(1000.0 + REFERENCE_REFRESH_S) == 1
        assert drift.reference("m1").content_hash == second.content_hash
        assert pipeline.refresh_references(1000.0 + 2 * REFERENCE_REFRESH_S) == 0
    finally:
        monitor.close()
        engine.dispose()


def test_every_option_has_help_and_config_is_one_flag_everywhere() -> None:
    """Issue 13, part 2: help text on every option of every command, and every command that reads
    a configuration takes it as ``--config`` (``check-config`` also keeps its old positional form)."""
    import typer.main  # typer 0.29 vendors click: duck-typed below

    root = typer.main.get_command(app)

    def commands(group: Any, prefix: str = "") -> list[tuple[str, Any]]:
        out = []
        for name, cmd in group.commands.items():
            if hasattr(cmd, "commands"):
                out += commands(cmd, f"{prefix}{name} ")
            else:
                out.append((prefix + name, cmd))
        return out

    found = commands(root)
    assert {"run", "demo", "replay", "check-config", "db upgrade", "reference build"} <= {n for n, _ in found}
    for name, cmd in found:
        for param in cmd.params:
            if param.param_type_name == "option" and param.name != "help":
                assert param.help, f"{name} --{param.name} has no help text"
        takes = {p.name for p in cmd.params}
        if name in ("run", "demo", "replay", "check-config", "db upgrade", "reference build"):
            assert "config" in takes, name
            flags = next(p for p in cmd.params if p.name == "config").opts
            assert "--config" in flags, (name, flags)
    ok = runner.invoke(app, ["check-config", "--config", "deploy/config/slicewatch.yaml"])
    assert ok.exit_code == 0 and ok.output.startswith("ok:")
    assert runner.invoke(app, ["check-config"]).exit_code == 2
