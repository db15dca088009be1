"""The composition root: settings in, running monitor out. The only module (with ``cli``) that
imports the settings; everything it builds takes plain constructor arguments.

poll -> store -> stats -> detect -> alerts -> commit:

* :func:`build_monitor` wires a :class:`Monitor` from :class:`~monitor.config.Settings`, with its
  source (the Kafka consumer group, or recorded files) and its sinks; every command uses it:
  ``run`` (:meth:`Monitor.run`), the demo (:func:`demo_monitor`), ``replay`` (:func:`replay`) and
  ``reference build`` (:func:`reference`, the store only);
* :meth:`Monitor.run` runs the consumer in this thread and the evaluations in a second one until
  ``stop`` is set (SIGTERM/SIGINT in ``slicewatch run``).
"""

from __future__ import annotations

import gc
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from kafka import KafkaProducer, TopicPartition
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from monitor.alerts.incidents import IncidentTracker
from monitor.alerts.sinks.alertmanager import AlertmanagerSink
from monitor.alerts.sinks.kafka import KafkaDriftPublisher
from monitor.alerts.state import AlertEvaluator
from monitor.config import Settings, load_settings, merge
from monitor.drift.engine import DriftEngine
from monitor.errors import ConfigError, StoreError
from monitor.events import EventKind
from monitor.ingest.consumer import IngestConsumer
from monitor.ingest.metrics import ConsumerMetrics
from monitor.ingest.redrive import RedrivePlan, plan_redrive, send_redrive
from monitor.ingest.topics import ensure_topics
from monitor.metrics.collector import MonitorCollector, RuleThresholds
from monitor.metrics.health import CachedCheck, Check, Health
from monitor.metrics.server import MetricsServer
from monitor.pipeline import EventClock, Pipeline
from monitor.records import DeadLetterGroup, LoggedLabelChange, StoredDeadLetter, WriteResult
from monitor.reference import ProfileOptions, build_reference
from monitor.replay import Recorder, ReplaySummary, load_events, run_replay
from monitor.stats.profile import ReferenceProfile
from monitor.store import alerts as alert_store
from monitor.store import dead_letters as dead_letter_rows
from monitor.store import erasure
from monitor.store import incidents as incident_store
from monitor.store import profiles as profile_store
from monitor.store.engine import database_problem, make_engine
from monitor.store.erasure import ErasureReceipt
from monitor.store.migrate import require_current, upgrade
from monitor.store.repository import Repository
from monitor.store.retention import RetentionPolicy, RetentionReport, maintain
from monitor.store.target_outcomes import TargetOutcomes
from monitor.store.window_state import WindowStateStore
from monitor.takeover import Takeover

log = logging.getLogger(__name__)
SHUTDOWN_BUDGET_S = 8.0  # of SIGTERM's 10 s, from the stop to the end of Monitor.run


Source = Literal["kafka", "files"]
"""Where events come from: the consumer group (``run``, the demo) or recorded files (``replay``)."""


@dataclass(frozen=True)
class Sinks:
    """Where drift events go: the Kafka topic and Alertmanager (``run``), callbacks (demo, replay)."""

    kafka: bool = True
    alertmanager: bool = True
    on_drift_event: Callable[[dict[str, Any]], None] | None = None
    on_snapshot: Callable[..., None] | None = None


def build_drift(settings: Settings) -> DriftEngine:
    s = settings.stats
    return DriftEngine(
        bucket_seconds=s.bucket_seconds,
        window_buckets=s.window_buckets,
        short_windows=[n for n in s.short_window_buckets if n < s.window_buckets],
        allowed_lateness_s=s.allowed_lateness_s,
        numeric_bins=s.numeric_bins,
        top_k_categories=s.top_k_categories,
        min_samples=s.min_samples,
        alpha=s.alpha,
        correction=s.correction,
        features=s.features,
        protected_slices=s.protected_slices,
        quality_bars=s.quality_bars,
        auto_reference_events=s.auto_reference_events,
        cohorts=s.cohorts,
        adwin_delta=s.adwin_delta,
        lineage_lookback_s=settings.alerts.lineage_lookback_s,
        max_features=s.max_features,
        max_buffered_models=s.max_buffered_models,
        max_future_s=settings.ingest.max_future_s,
    )


def build_evaluator(settings: Settings, target_quality: Any = None) -> AlertEvaluator:
    a = settings.alerts
    return AlertEvaluator(
        a.rules,
        promotion_watch_s=a.promotion_watch_s,
        lineage_lookback_s=a.lineage_lookback_s,
        resolved_resend_s=a.resolved_resend_s,
        alpha=settings.stats.alpha,
        target_quality=target_quality,
    )


def build_incidents(settings: Settings) -> IncidentTracker:
    a = settings.alerts
    return IncidentTracker(a.incident_group_s, a.promotion_watch_s, resolved_keep_s=a.resolved_resend_s)


def open_database(
    settings: Settings, url: str | None = None, *, migrate: bool = True, throwaway: bool = False
) -> Engine:
    """Connect (``url``, default the configured one) with the configured timeouts, after migrating
    it (``migrate``) or checking that it is at this version's schema (else ``StoreError``);
    ``throwaway``: a SQLite file deleted when the command ends (see ``make_engine``)."""
    url = url or settings.database.resolved_url()
    if migrate:
        upgrade(url)
    else:
        require_current(url)
    return make_engine(
        url,
        connect_timeout_s=settings.database.connect_timeout_s,
        statement_timeout_s=settings.database.statement_timeout_s,
        throwaway=throwaway,
    )


def retention_policy(settings: Settings, *, max_batches: int | None = None) -> RetentionPolicy:
    """The configured retention; ``keep_s`` covers what a takeover (two windows), late events and the
    rollback-target reads (the promotion watch and its lookback) can still ask of ``inference_log``."""
    r, s, a = settings.retention, settings.stats, settings.alerts
    window_s = s.bucket_seconds * s.window_buckets
    keep_s = max(2 * window_s + s.allowed_lateness_s, 2 * a.promotion_watch_s + a.lineage_lookback_s, 86400.0)
    return RetentionPolicy(
        inference_log_days=r.inference_log_days,
        dead_letter_days=r.dead_letter_days,
        drift_event_days=r.drift_event_days,
        resolved_alert_days=r.resolved_alert_days,
        keep_s=keep_s,
        batch_rows=r.batch_rows,
        max_batches=max_batches,
    )


def profile_options(settings: Settings) -> ProfileOptions:
    s = settings.stats
    return ProfileOptions(
        features=s.features,
        numeric_bins=s.numeric_bins,
        top_k_categories=s.top_k_categories,
        protected_slices=s.protected_slices,
    )


@dataclass
class Monitor:
    """Everything ``slicewatch run``, the demo and ``replay`` run, already wired (by :func:`build_monitor`)."""

    db: Engine
    repository: Repository
    pipeline: Pipeline
    consumer: IngestConsumer | None  # None for recorded files (replay)
    registry: CollectorRegistry
    metrics_server: MetricsServer | None
    clock: Callable[[], float]
    drift: DriftEngine
    takeover: Takeover
    inference_topic: str
    resolved_resend_s: float
    evaluate_every_s: float
    checkpoint_every_s: float
    retention: RetentionPolicy | None = None  # None: no data upkeep (replay, the demo)
    retention_every_s: float = 3600.0
    partitions_ahead_days: int = 3
    # wall seconds between the evaluating thread's looks at the clock (None: a quarter of
    # ``evaluate_every_s``, at most 1 s); an event clock that runs faster than the wall (the demo)
    # needs proportionally more looks to evaluate at its cadence
    evaluate_poll_s: float | None = None

    def rebuild(self, assigned: Iterable[TopicPartition]) -> None:
        """After a partition (re)assignment (called by the consumer's loop, not inside the rebalance
        callback): checkpoint and forget the models this replica no longer owns, and take over the
        models whose events are on the assigned partitions, from their checkpoints and
        ``inference_log`` (see :mod:`monitor.takeover`), with their alert states from
        ``drift_alert``. Rows are read in chunks, filtered by partition in SQL, so memory stays at
        one chunk whatever the window holds."""
        topic = self.inference_topic
        partitions = sorted({tp.partition for tp in assigned if tp.topic == topic})
        now = self.clock()
        since = self.takeover.window_start(now)
        models = self.repository.window_models(partitions, since, now + 1)
        gone = [m for m in self.drift.models if m not in set(models)]
        if gone:
            self.checkpoint(now, gone)
        states = alert_store.load_alert_states(
            self.db, now, self.resolved_resend_s, model_ids=models
        )
        incidents = incident_store.load_incidents(self.db, now, self.resolved_resend_s, model_ids=models)
        evaluator = self.pipeline.evaluator
        with self.pipeline.feed_lock, self.pipeline.lock:
            self.drift.drop_models(gone)
            self.pipeline.forget(gone)
            evaluator.forget([*gone, *models])
            took = self.takeover.restore(models, partitions, now)
            evaluator.restore(states)
            self.pipeline.incidents.forget([*gone, *models])
            self.pipeline.incidents.restore(incidents)
            self.pipeline.drop_unsaved([*gone, *models])
        log.info(
            "took over %d models (%d from checkpoints): %d rows and %d label changes replayed",
            took.models, took.from_checkpoint, took.rows_replayed, took.label_changes_applied,
        )

    def _last_writes(self) -> None:
        self.pipeline.save_profiles()
        self.checkpoint(self.clock())

    def checkpoint(self, now: float, models: Iterable[str] | None = None) -> None:
        """Checkpoint the window state (all models, or ``models``); a failure only costs a longer takeover."""
        if self.checkpoint_every_s <= 0:
            return
        try:
            self.takeover.checkpoint(now, models)
            self.takeover.prune(now)
        except (StoreError, SQLAlchemyError) as e:
            log.warning("window checkpoint failed (%s)", type(e).__name__)

    def upkeep(self, now: float) -> None:
        """The data upkeep: daily partitions ahead, then a bounded retention pass (logged when it
        removed anything); a failure is logged and tried again at the next pass."""
        if self.retention is None:
            return
        try:
            created, report = maintain(self.db, self.retention, now, ahead_days=self.partitions_ahead_days)
        except (StoreError, SQLAlchemyError) as e:
            log.warning("data upkeep failed (%s); next try in %.0f s", type(e).__name__, self.retention_every_s)
            return
        if created:
            log.info("created partitions %s", ", ".join(created))
        removed = {k: v for k, v in report.deleted.items() if v}
        if removed or report.dropped_partitions:
            dropped = ", ".join(report.dropped_partitions) or "none"
            rows = ", ".join(f"{v} {k} rows" for k, v in removed.items()) or "no rows"
            log.info("retention removed %s; dropped partitions: %s", rows, dropped)

    def close(self) -> None:
        """Release what :func:`build_monitor` opened and :meth:`run` does not close (replay)."""
        if self.metrics_server is not None:
            self.metrics_server.close()
        self.db.dispose()

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set; evaluations run every ``evaluate_every_s`` in a thread."""
        if self.consumer is None:
            raise ValueError("this monitor reads recorded files: run it with monitor.replay.run_replay")
        interval = self.evaluate_poll_s if self.evaluate_poll_s is not None else min(1.0, self.evaluate_every_s / 4)

        every = self.checkpoint_every_s
        last_checkpoint = self.clock()

        def evaluate_loop() -> None:
            nonlocal last_checkpoint
            while not stop.wait(interval):
                try:
                    now = self.clock()
                    self.pipeline.tick(now)
                    if every > 0 and now - last_checkpoint >= every:
                        last_checkpoint = now
                        self.checkpoint(now)
                except Exception as e:  # an evaluation failure must not stop ingestion
                    log.error("evaluation failed (%s)", type(e).__name__)

        stopped_at: list[float] = []

        def note_stop() -> None:
            stop.wait()
            stopped_at.append(time.monotonic())

        def upkeep_loop() -> None:
            wait = 0.0
            while not stop.wait(wait):
                self.upkeep(self.clock())
                wait = self.retention_every_s

        evaluator = threading.Thread(target=evaluate_loop, name="slicewatch-evaluate", daemon=True)
        evaluator.start()
        if self.retention is not None and self.retention_every_s > 0:
            threading.Thread(target=upkeep_loop, name="slicewatch-upkeep", daemon=True).start()
        threading.Thread(target=note_stop, name="slicewatch-stop", daemon=True).start()
        try:
            self.consumer.run(stop)
        finally:
            stop.set()
            # SIGTERM must end the process within 10 s whatever the database does: what is left of
            # SHUTDOWN_BUDGET_S after the consumer's own shutdown goes to the last profiles and
            # checkpoint, on a daemon thread that is abandoned when the database does not answer
            t0 = stopped_at[0] if stopped_at else time.monotonic()
            evaluator.join(timeout=max(0.0, min(0.5, t0 + SHUTDOWN_BUDGET_S - time.monotonic())))
            left = t0 + SHUTDOWN_BUDGET_S - time.monotonic()
            if left > 0.2:
                last = threading.Thread(target=self._last_writes, daemon=True)
                last.start()
                last.join(timeout=left)
            close = getattr(self.pipeline.publisher, "close", None)
            if close is not None:  # the drift-event producer's threads and sockets
                close()
            if self.metrics_server is not None:
                self.metrics_server.close()


def build_monitor(
    settings: Settings,
    *,
    source: Source = "kafka",
    database_url: str | None = None,
    sinks: Sinks = Sinks(),
    clock: Callable[[], float] | None = None,
    event_clock: EventClock | None = None,
    serve_metrics: bool = True,
    create_topics: bool = False,
    migrate: bool = True,
    throwaway_store: bool = False,
) -> Monitor:
    """The one composition root: every command wires its monitor here, with its own source and sinks.

    ``database_url`` overrides the configured one (replay's throw-away SQLite); ``event_clock`` makes
    event time the clock (demo); default: wall time (``clock``, for tests). ``migrate``: bring the
    database to this version's schema first (the demo, replay and tests, which own their database);
    ``slicewatch run`` passes False unless ``--migrate``, and then refuses a database at another
    schema instead of racing other replicas' migrations. ``throwaway_store``: the database is
    deleted when the command ends (replay's), so its writes are not synced."""
    db = open_database(settings, database_url, migrate=migrate, throwaway=throwaway_store)
    repository = Repository(db)
    drift = build_drift(settings)
    stored = profile_store.latest_profiles(db)
    for model_id, profile in stored.items():
        drift.set_reference(model_id, profile)
    log.info("loaded %d reference profiles", len(stored))
    the_clock: Callable[[], float] = event_clock if event_clock is not None else (clock or time.time)

    def target_quality(model_id: str, slice_: str, since: float, until: float) -> float | None:
        return alert_store.slice_accuracy(db, model_id, slice_, since, until)

    evaluator = build_evaluator(settings, target_quality)
    evaluator.restore(alert_store.load_alert_states(db, the_clock(), settings.alerts.resolved_resend_s))
    incidents = build_incidents(settings)
    incidents.restore(incident_store.load_incidents(db, the_clock(), settings.alerts.resolved_resend_s))
    k = settings.kafka
    client_kwargs = k.security.client_kwargs()
    if create_topics:
        ensure_topics(
            k.bootstrap_servers,
            [k.topics.inference, k.topics.feedback, k.topics.promotions, k.topics.drift_events,
             k.topics.dlq(k.topics.inference), k.topics.dlq(k.topics.feedback),
             k.topics.dlq(k.topics.promotions)],
            partitions=1,
            client_kwargs=client_kwargs,
        )
    registry = metrics_registry(settings)
    collector = MonitorCollector(max_models=settings.metrics.max_models)
    registry.register(collector)
    publisher = (
        KafkaDriftPublisher(
            k.bootstrap_servers,
            k.topics.drift_events,
            client_kwargs=client_kwargs,
            retry_initial_s=settings.alerts.publish_retry.initial_s,
            retry_max_s=settings.alerts.publish_retry.max_s,
            retry_multiplier=settings.alerts.publish_retry.multiplier,
            send_timeout_s=min(10.0, max(1.0, settings.stats.evaluate_every_s / 3)),
        )
        if sinks.kafka
        else None
    )
    alertmanager = (
        AlertmanagerSink(settings.alerts.alertmanager_url, ttl_s=max(60.0, 4 * settings.stats.evaluate_every_s),
                         runbook_base=settings.alerts.runbook_base_url)
        if sinks.alertmanager and settings.alerts.alertmanager_url
        else None
    )
    window_state = WindowStateStore(db)

    def label_feed(after: int, model_ids: Sequence[str] | None) -> list[LoggedLabelChange]:
        ids = model_ids if model_ids is None or len(model_ids) <= 5000 else None
        out: list[LoggedLabelChange] = []
        while True:
            got = window_state.label_changes_after(after, ids, limit=50_000)
            out.extend(got)
            if len(got) < 50_000:
                return out
            after = got[-1].seq

    pipeline = Pipeline(
        engine=drift,
        evaluator=evaluator,
        db=db,
        evaluate_every_s=settings.stats.evaluate_every_s,
        publisher=publisher,
        alertmanager=alertmanager,
        metrics=collector,
        save_profile=lambda p: profile_store.save_profile(db, p, source="auto"),
        on_drift_event=sinks.on_drift_event,
        on_snapshot=sinks.on_snapshot,
        promotions=repository.promotions(),
        label_feed=label_feed if source == "kafka" else None,
        label_seq=window_state.newest_label_seq(),
        target_outcomes=TargetOutcomes(db),  # scanned once per promotion, then the label log's changes
        target_lookback_s=settings.alerts.promotion_watch_s,
        incidents=incidents,
        event_version=settings.alerts.drift_event_version,
        # profiles built while running (`slicewatch reference build`) are picked up within a minute
        reference_hashes=(lambda: profile_store.latest_hashes(db)) if source == "kafka" else None,
        load_reference=lambda m: profile_store.latest_profile(db, m),
    )
    consumer = (
        _build_consumer(settings, repository, pipeline, registry, clock, event_clock) if source == "kafka" else None
    )
    checks: list[Check] = [] if consumer is None else [consumer.readiness]
    checks.append(CachedCheck(lambda: database_problem(db), ttl_s=5.0))
    server = (
        MetricsServer(registry, host=settings.metrics.host, port=settings.metrics.port, health=Health(checks)).start()
        if serve_metrics
        else None
    )
    monitor = Monitor(
        db=db,
        repository=repository,
        pipeline=pipeline,
        consumer=consumer,
        registry=registry,
        metrics_server=server,
        clock=the_clock,
        drift=drift,
        takeover=Takeover(
            engine=drift,
            pipeline=pipeline,
            repository=repository,
            store=window_state,
            bucket_seconds=settings.stats.bucket_seconds,
            window_buckets=settings.stats.window_buckets,
        ),
        inference_topic=k.topics.inference,
        resolved_resend_s=settings.alerts.resolved_resend_s,
        evaluate_every_s=settings.stats.evaluate_every_s,
        checkpoint_every_s=settings.stats.checkpoint_every_s,
        # the data upkeep runs on wall time only (not in replay, nor in the demo's event time)
        retention=retention_policy(settings) if source == "kafka" and event_clock is None else None,
        retention_every_s=settings.retention.every_s,
        partitions_ahead_days=settings.retention.partitions_ahead_days,
    )
    if consumer is not None:
        consumer.on_assigned = monitor.rebuild
    return monitor


def _build_consumer(
    settings: Settings,
    repository: Repository,
    pipeline: Pipeline,
    registry: CollectorRegistry,
    clock: Callable[[], float] | None,
    event_clock: EventClock | None,
) -> IngestConsumer:
    k = settings.kafka
    the_clock = event_clock if event_clock is not None else (clock or time.time)

    def on_written(result: WriteResult, now: float) -> None:
        if event_clock is not None:
            for ev in result.new_inferences:
                event_clock.advance(ev.served_at.timestamp())
        pipeline.on_written(result, the_clock())

    return IngestConsumer(
        bootstrap_servers=k.bootstrap_servers,
        group_id=k.group_id,
        inference_topic=k.topics.inference,
        feedback_topic=k.topics.feedback,
        promotions_topic=k.topics.promotions,
        repository=repository,
        metrics=ConsumerMetrics(registry),
        dlq_suffix=k.topics.dlq_suffix,
        client_kwargs=k.security.client_kwargs(),
        client_id=k.client_id,
        max_poll_records=k.max_poll_records,
        poll_timeout_ms=k.poll_timeout_ms,
        session_timeout_ms=k.session_timeout_ms,
        heartbeat_interval_ms=k.heartbeat_interval_ms,
        max_poll_interval_ms=k.max_poll_interval_ms,
        auto_offset_reset=k.auto_offset_reset,
        max_event_bytes=settings.ingest.max_event_bytes,
        dead_letter_value_cap_bytes=settings.ingest.dead_letter_value_cap_bytes,
        retry_initial_s=settings.ingest.retry.initial_s,
        retry_max_s=settings.ingest.retry.max_s,
        retry_multiplier=settings.ingest.retry.multiplier,
        shutdown_grace_s=settings.ingest.shutdown_grace_s,
        rejoin_timeout_s=settings.ingest.rejoin_timeout_s,
        write_stall_s=settings.ingest.write_stall_s,
        revoke_wait_s=settings.ingest.revoke_wait_s,
        max_future_s=settings.ingest.max_future_s,
        pending_label_ttl_s=settings.ingest.pending_label_ttl_s,
        on_written=on_written,
        clock=clock or time.time,  # ingest time (dead letters, the future bound): never the event clock
    )


def demo_monitor(config: Mapping[str, Any], *, event_clock: EventClock, sinks: Sinks) -> Monitor:
    """The demo's monitor from its configuration tree (no file, no environment overrides)."""
    try:
        settings = Settings.model_validate(config)
    except ValidationError as e:
        raise ConfigError(f"demo configuration: {e}") from e
    return build_monitor(settings, sinks=sinks, event_clock=event_clock, create_topics=True)


def demo_config_with_file(config: dict[str, Any], path: Path) -> dict[str, Any]:
    """The demo's configuration tree with the YAML file at ``path`` merged over it: a key the file
    names replaces the demo's, nested mappings merge, a rule replaces the demo's rule of its name;
    the broker, database and topics stay the demo's own. The file alone must be valid (its errors
    name it)."""
    load_settings(path, environ={})
    tree = yaml.safe_load(path.read_text()) or {}
    out = merge(config, tree)
    for name, rule in ((tree.get("alerts") or {}).get("rules") or {}).items():
        out["alerts"]["rules"][name] = rule
    out["kafka"] = {**out["kafka"], "bootstrap_servers": config["kafka"]["bootstrap_servers"],
                    "topics": config["kafka"]["topics"]}
    out["database"] = config["database"]
    return out


def config_differences(config: Mapping[str, Any], skip: Sequence[str] = ()) -> list[str]:
    """``path: value`` of every setting of the configuration tree that differs from the default
    (except paths starting with one of ``skip``), e.g. ``alerts.rules.quality.accuracy_gap.warning: 0.005``."""
    ours = Settings.model_validate(config).model_dump(mode="json")
    base = Settings.model_validate({"database": config.get("database", {})}).model_dump(mode="json")

    def walk(a: Any, b: Any, path: str) -> list[str]:
        if isinstance(a, dict) and isinstance(b, dict):
            return [line for k in a for line in walk(a[k], b.get(k), f"{path}.{k}" if path else str(k))]
        return [] if a == b else [f"{path}: {a}"]

    return [line for line in walk(ours, base, "") if not line.startswith(tuple(skip))]


def metrics_registry(settings: Settings) -> CollectorRegistry:
    """The registry every metric of the process goes to: client_python's process, platform and GC
    collectors, ``slicewatch_build_info{version}`` and every alert rule's thresholds. Without
    ``metrics.created_series`` no ``*_created`` series are exported (client_python's switch is
    process-wide; set here, at the one place the process is wired)."""
    from importlib.metadata import PackageNotFoundError, version

    import prometheus_client
    from prometheus_client import GCCollector, Info, PlatformCollector, ProcessCollector

    if settings.metrics.created_series:
        prometheus_client.enable_created_metrics()
    else:
        prometheus_client.disable_created_metrics()
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    try:
        installed = version("slicewatch")
    except PackageNotFoundError:
        installed = "unknown"
    Info("slicewatch_build", "The running Slicewatch version.", registry=registry).info({"version": installed})
    registry.register(RuleThresholds(settings.alerts.rules))
    return registry


def tune_gc(gen0_threshold: int) -> None:
    """The process's garbage collector for a long run (``ingest.gc_gen0_threshold``; 0: untouched):
    what start-up made is frozen out of every later collection, and the young generation is
    collected after ``gen0_threshold`` new container objects instead of 700. Called by the command
    that owns the process (``slicewatch run``, ``replay``), never by a library constructor."""
    if gen0_threshold <= 0:
        return
    gc.freeze()
    gc.set_threshold(gen0_threshold, 10, 10)


def replay(
    settings: Settings,
    inference: Path,
    feedback: Path | None,
    promotions: Path | None,
    out: Path,
    *,
    plot_dir: Path | None = None,
    progress: bool = False,
) -> ReplaySummary:
    """``slicewatch replay``: the files through a monitor on a throw-away SQLite store (no broker)."""
    summary = ReplaySummary()
    timeline = load_events(inference, feedback, promotions, settings.ingest.max_event_bytes, summary)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="slicewatch-replay-") as tmp, out.open("w") as sink:
        recorder = Recorder(sink, summary, settings.alerts.rules, keep_series=plot_dir is not None)
        monitor = build_monitor(
            settings,
            source="files",
            database_url=f"sqlite:///{Path(tmp) / 'replay.db'}",
            sinks=Sinks(kafka=False, alertmanager=False, on_drift_event=recorder.on_drift_event,
                        on_snapshot=recorder.on_snapshot),
            serve_metrics=False,
            throwaway_store=True,
        )
        try:
            run_replay(timeline, monitor.repository, monitor.pipeline, summary, progress=progress)
        finally:
            monitor.close()
    if plot_dir is not None:
        summary.plots = recorder.plot(plot_dir)
    return summary


def reference(
    settings: Settings,
    model_id: str,
    *,
    from_file: Path | None = None,
    since: float | None = None,
    until: float | None = None,
    now: float | None = None,
) -> ReferenceProfile:
    """``slicewatch reference build``: build and store a profile, from a file or logged rows."""
    db = open_database(settings)
    try:
        return build_reference(db, model_id, profile_options(settings), from_file=from_file, since=since,
                               until=until, now=now)
    finally:
        db.dispose()


# ---- data lifecycle commands (``db retention``, ``erase``, ``dlq``) -------------------------------


def data_retention(settings: Settings, now: float, *, dry_run: bool) -> tuple[list[str], RetentionReport]:
    """``slicewatch db retention``: partitions ahead and one retention pass run to the end."""
    db = open_database(settings, migrate=False)
    try:
        return maintain(db, retention_policy(settings), now, ahead_days=settings.retention.partitions_ahead_days,
                        dry_run=dry_run)
    finally:
        db.dispose()


def erase_rows(
    settings: Settings, now: float, *, request_ids: Sequence[str] = (), subject_ref: str | None = None
) -> ErasureReceipt:
    """``slicewatch erase``: delete the rows of the request ids or of the subject; the receipt."""
    db = open_database(settings, migrate=False)
    try:
        return erasure.erase(db, now, request_ids=request_ids, subject_ref=subject_ref)
    finally:
        db.dispose()


def dead_letter_report(
    settings: Settings, *, ids: Sequence[int] = (), error_class: str | None = None, stage: str | None = None,
    topic: str | None = None, limit: int | None = None,
) -> tuple[list[DeadLetterGroup], list[StoredDeadLetter]]:
    """``slicewatch dlq list|show``: the groups, and the dead letters the filters select."""
    db = open_database(settings, migrate=False)
    try:
        with db.connect() as conn:
            return dead_letter_rows.dead_letter_groups(conn), dead_letter_rows.dead_letters_where(
                conn, ids=ids, error_class=error_class, stage=stage, topic=topic, limit=limit
            )
    finally:
        db.dispose()


def redrive_dead_letters(
    settings: Settings, now: float, *, ids: Sequence[int] = (), error_class: str | None = None,
    stage: str | None = None, topic: str | None = None, again: bool = False, dry_run: bool = False,
    limit: int = 10_000,
) -> RedrivePlan:
    """``slicewatch dlq redrive``: send the selected dead letters that decode now back to their
    topics, then mark them re-driven (see :mod:`monitor.ingest.redrive`)."""
    k = settings.kafka
    kinds: dict[str, EventKind] = {k.topics.inference: "inference", k.topics.feedback: "feedback",
                                   k.topics.promotions: "promotion"}
    db = open_database(settings, migrate=False)
    try:
        with db.connect() as conn:
            letters = dead_letter_rows.dead_letters_where(
                conn, ids=ids, error_class=error_class, stage=stage, topic=topic, include_redriven=again, limit=limit
            )
        plan = plan_redrive(letters, kinds, settings.ingest.max_event_bytes)
        if dry_run or not plan.ready:
            return plan
        producer = KafkaProducer(bootstrap_servers=k.bootstrap_servers, client_id=f"{k.client_id}-redrive",
                                 acks="all", **k.security.client_kwargs())
        try:
            send_redrive(producer, plan.ready)
        finally:
            producer.close(timeout=5)
        with db.begin() as conn:
            dead_letter_rows.mark_redriven(conn, [d.id for d in plan.ready], now)
        return plan
    finally:
        db.dispose()
