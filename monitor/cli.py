"""The ``slicewatch`` command line: run, demo, replay, check-config, db upgrade, reference build."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from monitor.config import Settings, load_settings
from monitor.errors import ConfigError, SlicewatchError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Slicewatch: streaming drift monitor.")
db_app = typer.Typer(no_args_is_help=True, help="Database migrations.")
reference_app = typer.Typer(no_args_is_help=True, help="Reference profiles.")
app.add_typer(db_app, name="db")
app.add_typer(reference_app, name="reference")

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML configuration file.")]


def version_text() -> str:
    """``slicewatch <version>``: the installed distribution's version."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"slicewatch {version('slicewatch')}"
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "slicewatch (not installed)"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(version_text())
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.",
                                          callback=_print_version, is_eager=True)] = False,
) -> None:
    """Slicewatch: streaming drift monitor."""


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts`` (RFC 3339, UTC), ``level``, ``logger``, ``message`` (and
    ``exc`` with the exception type when there is one). The messages never hold payloads.

    >>> import json
    >>> r = logging.LogRecord("monitor.x", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    >>> r.created = 0.0
    >>> json.loads(JsonFormatter().format(r))
    {'ts': '1970-01-01T00:00:00.000Z', 'level': 'INFO', 'logger': 'monitor.x', 'message': 'hello you'}
    """

    def format(self, record: logging.LogRecord) -> str:
        import json
        from datetime import UTC

        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        doc = {"ts": ts, "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        if record.exc_info and record.exc_info[0] is not None:
            doc["exc"] = record.exc_info[0].__name__
        return json.dumps(doc)


def _logging(level: str = "INFO", fmt: str = "text") -> None:
    if fmt == "json":
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        logging.basicConfig(level=level, handlers=[handler])
    else:
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _epoch(text: str) -> float:
    try:
        dt = datetime.fromisoformat(text)
    except ValueError as e:
        raise typer.BadParameter(f"not an RFC 3339 time: {text!r}") from e
    if dt.tzinfo is None:
        raise typer.BadParameter("times need an offset, e.g. 2026-11-01T00:00:00+00:00")
    return dt.timestamp()


@app.command("check-config")
def check_config(
    path: Annotated[Path | None, typer.Argument(help="The file (as --config; kept for older scripts).",
                                                show_default=False)] = None,
    config: ConfigOpt = None,
) -> None:
    """Validate a configuration file plus the SLICEWATCH__* environment overrides."""
    if (path is None) == (config is None):
        typer.echo("error: give the file as --config FILE", err=True)
        raise typer.Exit(2)
    file = config or path
    settings = _settings(file)
    typer.echo(f"ok: {file} is valid ({len(settings.alerts.rules)} alert rules, "
               f"{sum(len(v) for v in settings.stats.protected_slices.values())} protected slice values)")


@db_app.command("upgrade")
def db_upgrade(
    config: ConfigOpt = None,
    database_url: Annotated[str | None, typer.Option(help="Overrides the configured URL.")] = None,
) -> None:
    """Apply the database migrations."""
    from monitor.store.migrate import upgrade

    url = database_url or _settings(config).database.resolved_url()
    try:
        upgrade(url)
    except SlicewatchError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from e
    typer.echo("database is at the newest migration")


@app.command()
def run(
    config: ConfigOpt = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
    migrate: Annotated[bool, typer.Option(
        "--migrate", help="Migrate the database first (default: refuse a database at another schema; "
        "migrate with `slicewatch db upgrade`, as the systemd unit and the Kubernetes init container do).")] = False,
    log_format: Annotated[str, typer.Option(help="'text' or 'json' (one JSON object per line).")] = "text",
) -> None:
    """Run the monitor: consumer group, statistics, alerts and /metrics."""
    from monitor.app import build_monitor

    if log_format not in ("text", "json"):
        typer.echo("error: --log-format must be 'text' or 'json'", err=True)
        raise typer.Exit(2)
    _logging(log_level, log_format)
    settings = _settings(config)
    try:
        monitor = build_monitor(settings, migrate=migrate)
    except SlicewatchError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from e
    k = settings.kafka
    log = logging.getLogger("monitor.cli")
    log.info("consuming %s as group %s from %s", ", ".join([k.topics.inference, k.topics.feedback,
             k.topics.promotions]), k.group_id, k.bootstrap_servers)
    if monitor.metrics_server is not None:
        base = f"http://{settings.metrics.host}:{monitor.metrics_server.port}"
        log.info("serving %s/metrics, %s/healthz and %s/readyz", base, base, base)
    stop = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    monitor.run(stop)


@reference_app.command("build")
def reference_build(
    model_id: Annotated[str, typer.Option("--model-id", help="The model id the profile is for.")],
    from_file: Annotated[Path | None, typer.Option("--from", help="Parquet, CSV or JSONL file.")] = None,
    from_log: Annotated[bool, typer.Option("--from-log", help="Use the model's rows in inference_log.")] = False,
    since: Annotated[str | None, typer.Option(help="RFC 3339 start (with --from-log).")] = None,
    until: Annotated[str | None, typer.Option(help="RFC 3339 end (with --from-log).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Build and store a reference profile for a model."""
    from monitor.app import reference

    settings = _settings(config)
    if (from_file is None) == (not from_log):
        raise typer.BadParameter("give exactly one of --from FILE or --from-log")
    if from_log and (since is None or until is None):
        raise typer.BadParameter("--from-log needs --since and --until")
    try:
        profile = reference(
            settings,
            model_id,
            from_file=from_file,
            since=_epoch(since) if since else None,
            until=_epoch(until) if until else None,
        )
    except SlicewatchError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from e
    typer.echo(f"stored reference profile {profile.id} v{profile.version} for {model_id} "
               f"(hash {profile.content_hash[:12]}, {len(profile.features)} features)")


@app.command()
def replay(
    inference: Annotated[Path, typer.Option(help="Inference events (JSONL or Parquet).")],
    out: Annotated[Path, typer.Option(help="Where to write the drift events (JSONL).")],
    config: ConfigOpt = None,
    feedback: Annotated[Path | None, typer.Option(help="Feedback events (JSONL or Parquet).")] = None,
    promotions: Annotated[Path | None, typer.Option(help="Promotion events (JSONL or Parquet).")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write a PNG per alerted signal here.")] = None,
    max_rejected_share: Annotated[float, typer.Option(
        help="Exit 1 when a file has more than this share of its events rejected.", min=0.0, max=1.0)] = 0.1,
    output_format: Annotated[str, typer.Option("--format", help="Summary as a 'table' or 'json' (for scripts).")
                             ] = "table",
) -> None:
    """Backtest: recorded events through the same statistics and alerting, no broker or database.

    Exits 1 when nothing was replayed or a file had more than --max-rejected-share of its events
    rejected (naming the file and its most common reason)."""
    import json

    from monitor.app import replay as run_replay

    if output_format not in ("table", "json"):
        typer.echo("error: --format must be 'table' or 'json'", err=True)
        raise typer.Exit(2)
    settings = _settings(config)
    try:
        summary = run_replay(settings, inference, feedback, promotions, out, plot_dir=plot,
                             progress=output_format == "table" and sys.stderr.isatty())
    except SlicewatchError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from e
    if output_format == "json":
        typer.echo(json.dumps(summary.as_dict(), sort_keys=True, default=str))
    else:
        summary.print()
    problems = summary.problems(max_rejected_share)
    for p in problems:
        typer.echo(f"error: {p}", err=True)
    if problems:
        raise typer.Exit(1)


@app.command()
def demo(
    bootstrap_servers: Annotated[str | None, typer.Option(help="Use this Kafka instead of embedded Tansu.")] = None,
    database_url: Annotated[str | None, typer.Option(help="Database URL (default: a SQLite file).")] = None,
    minutes: Annotated[float, typer.Option(help="Event-time minutes of traffic to simulate.")] = 120.0,
    speedup: Annotated[float, typer.Option(help="Event time per wall-clock second.")] = 60.0,
    rate: Annotated[float, typer.Option(help="Inference events per event-time second.")] = 24.0,
    workdir: Annotated[Path, typer.Option(help="Where the demo keeps its database.")] = Path("slicewatch-demo"),
    live: Annotated[bool, typer.Option(help="Live terminal view (rich).")] = True,
    seed: Annotated[int, typer.Option(help="Seed of the traffic generator.")] = 7,
    metrics_port: Annotated[int, typer.Option(help="Port of /metrics, /healthz, /readyz (busy: a free one).")
                            ] = 9731,
    config: Annotated[Path | None, typer.Option("--config", "-c", help=(
        "YAML merged over the demo's configuration (its broker, database and topics stay the demo's)."))] = None,
) -> None:
    """End-to-end demo on embedded defaults: broker, SQLite, /metrics, scripted incidents."""
    from monitor.demo.run import DemoOptions, run_demo

    options = DemoOptions(
        bootstrap_servers=bootstrap_servers,
        database_url=database_url,
        minutes=minutes,
        speedup=speedup,
        rate=rate,
        workdir=workdir,
        live=live and sys.stdout.isatty(),
        seed=seed,
        metrics_port=metrics_port,
        config_file=config,
    )
    try:
        result = run_demo(options)
    except ConfigError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    raise typer.Exit(0 if result.all_detected else 1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
