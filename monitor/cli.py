"""The ``slicewatch`` command line: run, demo, replay, check-config, db upgrade|retention, reference
build, erase, dlq list|show|redrive."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from monitor.config import RetentionSettings, Settings, load_settings
from monitor.errors import ConfigError, SlicewatchError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Slicewatch: streaming drift monitor.")
db_app = typer.Typer(no_args_is_help=True, help="Database migrations.")
reference_app = typer.Typer(no_args_is_help=True, help="Reference profiles.")
dlq_app = typer.Typer(no_args_is_help=True, help="Dead letters: inspect by reason, re-drive the fixed ones.")
app.add_typer(db_app, name="db")
app.add_typer(reference_app, name="reference")
app.add_typer(dlq_app, name="dlq")

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML configuration file.")]
FormatOpt = Annotated[str, typer.Option("--format", help="'table' (people) or 'json' (scripts).")]


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
    from monitor.store.engine import make_engine
    from monitor.store.partitions import days_around, ensure_partitions

    retention = RetentionSettings() if database_url else _settings(config).retention
    ahead = retention.partitions_ahead_days
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            created = ensure_partitions(conn, days_around(time.time(), 1, ahead))
    finally:
        engine.dispose()
    made = f"; created partitions {', '.join(created)}" if created else ""
    typer.echo(f"database is at the newest migration{made}")


def _check_format(output_format: str) -> None:
    if output_format not in ("table", "json"):
        typer.echo("error: --format must be 'table' or 'json'", err=True)
        raise typer.Exit(2)


def _fail(e: Exception) -> typer.Exit:
    typer.echo(f"error: {e}", err=True)
    return typer.Exit(1)


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@db_app.command("retention")
def db_retention(
    config: ConfigOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would go; remove nothing.")] = False,
    output_format: FormatOpt = "table",
) -> None:
    """Create the partitions ahead and remove the rows past their retention (retention.* settings)."""
    from monitor.app import data_retention

    _check_format(output_format)
    settings = _settings(config)
    try:
        created, report = data_retention(settings, time.time(), dry_run=dry_run)
    except SlicewatchError as e:
        raise _fail(e) from e
    if output_format == "json":
        typer.echo(json.dumps({**report.as_dict(), "created_partitions": created}, sort_keys=True))
        return
    verb = "would remove" if dry_run else "removed"
    for table, n in report.deleted.items():
        cut = report.cutoffs.get(table if table != "inference_request" else "inference_log")
        typer.echo(f"{table:<18} {verb} {n:>10} rows (served or stored before {_when(cut)})")
    if report.dropped_partitions:
        verb = "would drop" if dry_run else "dropped"
        typer.echo(f"{'partitions':<18} {verb} {', '.join(report.dropped_partitions)}")
    if created:
        typer.echo(f"{'partitions':<18} created {', '.join(created)}")
    if report.held_since is not None:
        typer.echo(f"rows served since {_when(report.held_since)} are held (a reference build in progress)")


@app.command()
def erase(
    request_ids: Annotated[Path | None, typer.Option(
        "--request-ids", help="File of request ids, one per line ('-': standard input).")] = None,
    subject: Annotated[str | None, typer.Option(
        "--subject", help="A subject_ref: erase every row of the person it stands for.")] = None,
    config: ConfigOpt = None,
    output_format: FormatOpt = "table",
) -> None:
    """Erase the stored rows of some requests or of one person, and print the erasure receipt."""
    from monitor.app import erase_rows

    _check_format(output_format)
    if (request_ids is None) == (subject is None):
        typer.echo("error: give exactly one of --request-ids FILE or --subject REF", err=True)
        raise typer.Exit(2)
    ids: list[str] = []
    if request_ids is not None:
        try:
            text = sys.stdin.read() if str(request_ids) == "-" else request_ids.read_text()
        except OSError as e:
            typer.echo(f"error: cannot read {request_ids}: {e.strerror}", err=True)
            raise typer.Exit(2) from e
        ids = [line.strip() for line in text.splitlines() if line.strip()]
        if not ids:
            typer.echo(f"error: {request_ids} holds no request ids", err=True)
            raise typer.Exit(2)
    settings = _settings(config)
    try:
        receipt = erase_rows(settings, time.time(), request_ids=ids, subject_ref=subject)
    except SlicewatchError as e:
        raise _fail(e) from e
    if output_format == "json":
        typer.echo(json.dumps(receipt.as_dict(), sort_keys=True))
        return
    typer.echo(f"erasure receipt {receipt.id} at {_when(receipt.erased_at)}: {receipt.inference_rows} inference rows, "
               f"{receipt.pending_labels} waiting labels, {receipt.label_changes} label changes, "
               f"{receipt.dead_letters} dead-letter values")
    typer.echo(f"request sha256 {receipt.request_sha256} (salt {receipt.salt})")


@dlq_app.command("list")
def dlq_list(
    config: ConfigOpt = None,
    error_class: Annotated[str | None, typer.Option(help="Only this error class: list its dead letters.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many dead letters with --error-class.", min=1)] = 50,
    output_format: FormatOpt = "table",
) -> None:
    """Dead letters by source topic, stage and error class (with --error-class: the letters themselves)."""
    from monitor.app import dead_letter_report

    _check_format(output_format)
    settings = _settings(config)
    try:
        groups, letters = dead_letter_report(settings, error_class=error_class, limit=limit)
    except SlicewatchError as e:
        raise _fail(e) from e
    if error_class is None:
        if output_format == "json":
            typer.echo(json.dumps([g.__dict__ for g in groups], sort_keys=True))
            return
        typer.echo(f"{'count':>7} {'redriven':>8}  {'topic':<24} {'stage':<8} {'error class':<20} last received")
        for g in groups:
            typer.echo(f"{g.count:>7} {g.redriven:>8}  {g.topic:<24} {g.stage:<8} {g.error_class:<20} "
                       f"{_when(g.last_received_at)}")
            typer.echo(f"{'':>18}e.g. {g.example_reason}")
        return
    _print_letters(letters, output_format, with_value=False)


def _print_letters(letters: list[Any], output_format: str, *, with_value: bool) -> None:
    if output_format == "json":
        rows = []
        for d in letters:
            r = d.record
            row = {"id": d.id, "topic": r.topic, "partition": r.partition, "offset": r.offset, "stage": r.stage,
                   "error_class": r.error_class, "reason": r.reason, "value_size": r.value_size,
                   "received_at": _when(r.received_at), "published_at": _when(d.published_at),
                   "redriven_at": _when(d.redriven_at)}
            if with_value:
                row["value"] = None if r.value is None else r.value.decode("utf-8", "backslashreplace")
            rows.append(row)
        typer.echo(json.dumps(rows, sort_keys=True))
        return
    for d in letters:
        r = d.record
        typer.echo(f"#{d.id} {r.topic}/{r.partition}@{r.offset} {r.stage}/{r.error_class} {r.value_size} bytes, "
                   f"received {_when(r.received_at)}, re-driven {_when(d.redriven_at)}")
        typer.echo(f"    {r.reason}")
        if with_value:
            typer.echo("    value: " + ("(erased)" if r.value is None else r.value.decode("utf-8", "backslashreplace")))


@dlq_app.command("show")
def dlq_show(
    ids: Annotated[list[int], typer.Argument(help="Dead-letter ids (from `dlq list --error-class`).")],
    config: ConfigOpt = None,
    value: Annotated[bool, typer.Option("--value", help="Also print the raw value (it may hold user data).")] = False,
    output_format: FormatOpt = "table",
) -> None:
    """One or more dead letters: source, reason, times; the raw value only with --value."""
    from monitor.app import dead_letter_report

    _check_format(output_format)
    settings = _settings(config)
    try:
        _, letters = dead_letter_report(settings, ids=ids)
    except SlicewatchError as e:
        raise _fail(e) from e
    missing = sorted(set(ids) - {d.id for d in letters})
    _print_letters(letters, output_format, with_value=value)
    if missing:
        typer.echo(f"error: no dead letter {', '.join(map(str, missing))}", err=True)
        raise typer.Exit(1)


@dlq_app.command("redrive")
def dlq_redrive(
    config: ConfigOpt = None,
    ids: Annotated[list[int] | None, typer.Option("--id", help="Only these dead letters (repeatable).")] = None,
    error_class: Annotated[str | None, typer.Option(help="Only dead letters of this error class.")] = None,
    stage: Annotated[str | None, typer.Option(help="Only dead letters of this stage.")] = None,
    topic: Annotated[str | None, typer.Option(help="Only dead letters from this source topic.")] = None,
    again: Annotated[bool, typer.Option("--again", help="Also those re-driven before.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be sent; send nothing.")] = False,
    output_format: FormatOpt = "table",
) -> None:
    """Send the selected dead letters that this version's decoder accepts back to their topics."""
    from monitor.app import redrive_dead_letters

    _check_format(output_format)
    settings = _settings(config)
    try:
        plan = redrive_dead_letters(settings, time.time(), ids=ids or (), error_class=error_class, stage=stage,
                                    topic=topic, again=again, dry_run=dry_run)
    except SlicewatchError as e:
        raise _fail(e) from e
    except Exception as e:  # a Kafka error: nothing was marked, run it again
        typer.echo(f"error: re-drive failed ({type(e).__name__}); nothing was marked re-driven, run it again",
                   err=True)
        raise typer.Exit(1) from e
    if output_format == "json":
        typer.echo(json.dumps({"dry_run": dry_run, "sent": [d.id for d in plan.ready],
                               "skipped": {str(k): v for k, v in plan.skipped.items()}}, sort_keys=True))
        return
    typer.echo(f"{'would send' if dry_run else 'sent'} {len(plan.ready)} dead letters back to their topics"
               + (f": {', '.join(str(d.id) for d in plan.ready[:20])}" if plan.ready else ""))
    for i, why in list(plan.skipped.items())[:50]:
        typer.echo(f"  #{i} not sent: {why}")


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
    from monitor.app import build_monitor, tune_gc

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
    tune_gc(settings.ingest.gc_gen0_threshold)
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
    from monitor.app import replay as run_replay
    from monitor.app import tune_gc

    if output_format not in ("table", "json"):
        typer.echo("error: --format must be 'table' or 'json'", err=True)
        raise typer.Exit(2)
    settings = _settings(config)
    tune_gc(settings.ingest.gc_gen0_threshold)
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
