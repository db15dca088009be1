"""The composition root: settings in, running monitor out. The only module (with ``cli``) that
imports the settings; everything it builds takes plain constructor arguments.

poll -> store -> stats -> detect -> alerts -> commit:

* :func:`build_monitor` wires a :class:`Monitor` from :class:`~monitor.config.Settings`;
* :meth:`Monitor.run` runs the consumer in this thread and the evaluations in a second one until
  ``stop`` is set (SIGTERM/SIGINT in ``slicewatch run``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kafka import TopicPartition
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import SQLAlchemyError

from monitor.alerts.rules import rules_from_mapping
from monitor.alerts.sinks.alertmanager import AlertmanagerSink
from monitor.alerts.sinks.kafka import KafkaDriftPublisher
from monitor.alerts.state import AlertEvaluator
from monitor.config import Settings
from monitor.drift.engine import DriftEngine
from monitor.errors import StoreError
from monitor.ingest.consumer import IngestConsumer
from monitor.ingest.metrics import ConsumerMetrics
from monitor.ingest.topics import ensure_topics
from monitor.metrics.collector import MonitorCollector
from monitor.metrics.server import MetricsServer
from monitor.pipeline import EventClock, Pipeline
from monitor.records import LoggedLabelChange, WriteResult
from monitor.store import alerts as alert_store
from monitor.store import profiles as profile_store
from monitor.store.engine import make_engine
from monitor.store.migrate import upgrade
from monitor.store.repository import Repository
from monitor.store.window_state import WindowStateStore
from monitor.takeover import Takeover

log = logging.getLogger(__name__)
SHUTDOWN_BUDGET_S = 8.0  # of SIGTERM's 10 s, from the stop to the end of Monitor.run


def build_engine(settings: Settings) -> DriftEngine:
    s = settings.stats
    bars = {
        model: {sl: (bar.accuracy, bar.score) for sl, bar in slices.items()}
        for model, slices in s.quality_bars.items()
    }
    return DriftEngine(
        bucket_seconds=s.bucket_seconds,
        window_buckets=s.window_buckets,
        allowed_lateness_s=s.allowed_lateness_s,
        numeric_bins=s.numeric_bins,
        top_k_categories=s.top_k_categories,
        min_samples=s.min_samples,
        alpha=s.alpha,
        correction=s.correction,
        features=s.features,
        protected_slices=s.protected_slices,
        quality_bars=bars,
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
        rules_from_mapping({name: rule.model_dump() for name, rule in a.rules.items()}),
        promotion_watch_s=a.promotion_watch_s,
        lineage_lookback_s=a.lineage_lookback_s,
        resolved_resend_s=a.resolved_resend_s,
        alpha=settings.stats.alpha,
        target_quality=target_quality,
    )


@dataclass
class Monitor:
    """Everything ``slicewatch run`` (and the demo) runs, already wired."""

    settings: Settings
    repository: Repository
    pipeline: Pipeline
    consumer: IngestConsumer
    registry: CollectorRegistry
    metrics_server: MetricsServer | None
    clock: Callable[[], float]
    engine: DriftEngine
    takeover: Takeover

    def rebuild(self, assigned: Iterable[TopicPartition]) -> None:
        """After a partition (re)assignment (called by the consumer's loop, not inside the rebalance
        callback): checkpoint and forget the models this replica no longer owns, and take over the
        models whose events are on the assigned partitions, from their checkpoints and
        ``inference_log`` (see :mod:`monitor.takeover`), with their alert states from
        ``drift_alert``. Rows are read in chunks, filtered by partition in SQL, so memory stays at
        one chunk whatever the window holds."""
        topic = self.settings.kafka.topics.inference
        partitions = sorted({tp.partition for tp in assigned if tp.topic == topic})
        now = self.clock()
        since = self.takeover.window_start(now)
        models = self.repository.window_models(partitions, since, now + 1)
        gone = [m for m in self.engine.models if m not in set(models)]
        if gone:
            self.checkpoint(now, gone)
        states = alert_store.load_alert_states(
            self.repository.engine, now, self.settings.alerts.resolved_resend_s, model_ids=models
        )
        evaluator = self.pipeline.evaluator
        with self.pipeline.feed_lock, self.pipeline.lock:
            self.engine.drop_models(gone)
            self.pipeline.forget(gone)
            evaluator.forget([*gone, *models])
            took = self.takeover.restore(models, partitions, now)
            evaluator.restore(states)
        log.info(
            "took over %d models (%d from checkpoints): %d rows and %d label changes replayed",
            took.models, took.from_checkpoint, took.rows_replayed, took.label_changes_applied,
        )

    def _last_writes(self) -> None:
        self.pipeline.save_profiles()
        self.checkpoint(self.clock())

    def checkpoint(self, now: float, models: Iterable[str] | None = None) -> None:
        """Checkpoint the window state (all models, or ``models``); a failure only costs a longer takeover."""
        if self.settings.stats.checkpoint_every_s <= 0:
            return
        try:
            self.takeover.checkpoint(now, models)
            self.takeover.prune(now)
        except (StoreError, SQLAlchemyError) as e:
            log.warning("window checkpoint failed (%s)", type(e).__name__)

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set; evaluations run every ``evaluate_every_s`` in a thread."""
        interval = min(1.0, self.settings.stats.evaluate_every_s / 4)

        every = self.settings.stats.checkpoint_every_s
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

        evaluator = threading.Thread(target=evaluate_loop, name="slicewatch-evaluate", daemon=True)
        evaluator.start()
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
    clock: Callable[[], float] | None = None,
    serve_metrics: bool = True,
    on_drift_event: Callable[[dict[str, Any]], None] | None = None,
    on_snapshot: Callable[..., None] | None = None,
    event_clock: EventClock | None = None,
    create_topics: bool = False,
) -> Monitor:
    """Wire the monitor. ``event_clock`` makes event time the clock (demo); default: wall time."""
    url = settings.database.resolved_url()
    upgrade(url)
    db = make_engine(
        url,
        connect_timeout_s=settings.database.connect_timeout_s,
        statement_timeout_s=settings.database.statement_timeout_s,
    )
    repository = Repository(db)
    engine = build_engine(settings)
    for model_id, profile in profile_store.latest_profiles(db).items():
        engine.set_reference(model_id, profile)
    the_clock: Callable[[], float] = event_clock if event_clock is not None else (clock or time.time)

    def target_quality(model_id: str, slice_: str, since: float, until: float) -> float | None:
        return alert_store.slice_accuracy(db, model_id, slice_, since, until)

    evaluator = build_evaluator(settings, target_quality)
    evaluator.restore(alert_store.load_alert_states(db, the_clock(), settings.alerts.resolved_resend_s))
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
    registry = CollectorRegistry()
    consumer_metrics = ConsumerMetrics(registry)
    collector = MonitorCollector(max_models=settings.metrics.max_models)
    registry.register(collector)
    publisher = KafkaDriftPublisher(
        k.bootstrap_servers,
        k.topics.drift_events,
        client_kwargs=client_kwargs,
        retry_initial_s=settings.alerts.publish_retry.initial_s,
        retry_max_s=settings.alerts.publish_retry.max_s,
        retry_multiplier=settings.alerts.publish_retry.multiplier,
        send_timeout_s=min(10.0, max(1.0, settings.stats.evaluate_every_s / 3)),
    )
    alertmanager = (
        AlertmanagerSink(settings.alerts.alertmanager_url, ttl_s=max(60.0, 4 * settings.stats.evaluate_every_s))
        if settings.alerts.alertmanager_url
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
        engine=engine,
        evaluator=evaluator,
        db=db,
        evaluate_every_s=settings.stats.evaluate_every_s,
        publisher=publisher,
        alertmanager=alertmanager,
        metrics=collector,
        save_profile=lambda p: profile_store.save_profile(db, p, source="auto"),
        on_drift_event=on_drift_event,
        on_snapshot=on_snapshot,
        promotions=repository.promotions(),
        label_feed=label_feed,
        label_seq=window_state.newest_label_seq(),
    )

    def on_written(result: WriteResult, now: float) -> None:
        if event_clock is not None:
            for ev in result.new_inferences:
                event_clock.advance(ev.served_at.timestamp())
        pipeline.on_written(result, the_clock())

    consumer = IngestConsumer(
        bootstrap_servers=k.bootstrap_servers,
        group_id=k.group_id,
        inference_topic=k.topics.inference,
        feedback_topic=k.topics.feedback,
        promotions_topic=k.topics.promotions,
        repository=repository,
        metrics=consumer_metrics,
        dlq_suffix=k.topics.dlq_suffix,
        client_kwargs=client_kwargs,
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
    server = (
        MetricsServer(registry, host=settings.metrics.host, port=settings.metrics.port).start()
        if serve_metrics
        else None
    )
    monitor = Monitor(
        settings=settings,
        repository=repository,
        pipeline=pipeline,
        consumer=consumer,
        registry=registry,
        metrics_server=server,
        clock=the_clock,
        engine=engine,
        takeover=Takeover(
            engine=engine,
            pipeline=pipeline,
            repository=repository,
            store=window_state,
            bucket_seconds=settings.stats.bucket_seconds,
            window_buckets=settings.stats.window_buckets,
        ),
    )
    consumer.on_assigned = monitor.rebuild
    return monitor
