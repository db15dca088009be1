"""The monitor's inner loop, shared by ``run``, ``demo`` and ``replay``: store -> stats -> alerts.

The consumer (or the replay reader) hands every durably written batch to :meth:`Pipeline.on_written`;
:meth:`Pipeline.tick` runs an evaluation when one is due: snapshot -> alert transitions -> persisted
alert states -> drift events in the outbox -> published to Kafka -> pushed to Alertmanager ->
metrics view swapped. Everything with I/O is injected, and time is an argument, so the same code
runs live (wall clock), in the demo (event clock) and in a backtest (event clock, no broker).

Evaluation instants are aligned to multiples of ``evaluate_every_s``, so a replay and a live run over
the same events evaluate at the same instants.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from monitor.alerts.drift_event import build_drift_event, build_incident_event
from monitor.alerts.errors import PublishError
from monitor.alerts.incidents import IncidentTracker, IncidentTransition
from monitor.alerts.state import AlertEvaluator, Transition
from monitor.errors import StoreError, StoreUnavailable
from monitor.events import InferenceEvent, PromotionEvent
from monitor.records import LabelChange, LoggedLabelChange, WriteResult
from monitor.snapshot import Snapshot
from monitor.store import alerts as alert_store
from monitor.store import evaluation as evaluation_store

log = logging.getLogger(__name__)


class StatsEngine(Protocol):
    """The statistics engine (``monitor.drift.engine.DriftEngine``) as the pipeline uses it."""

    def observe(self, inferences: Sequence[InferenceEvent], labels: Sequence[LabelChange], now: float) -> None: ...
    def evaluate(self, now: float) -> Snapshot: ...
    def set_reference(self, model_id: str, profile: Any) -> None: ...
    def reference(self, model_id: str) -> Any: ...
    def new_references(self) -> list[Any]: ...
    def set_target_outcomes(self, model_id: str, target_id: str, outcomes: Any) -> None: ...
    def set_canary(self, model_id: str, target_id: str | None) -> None: ...
    @property
    def models(self) -> tuple[str, ...]: ...
    @property
    def slice_labels(self) -> list[str]: ...


TARGET_REFRESH_S = 60.0
"""How often a young promotion's rollback target outcomes are read again."""
MAX_UNSAVED_EVENTS = 10_000
"""Drift events kept in memory while the database is down (the oldest beyond are dropped)."""
REFERENCE_REFRESH_S = 60.0
"""How often the store is asked for reference profiles newer than the engine's (``reference build``
while the monitor runs: picked up within this, no restart)."""

TargetOutcomes = Callable[[str, Sequence[str], float, float], Mapping[str, tuple[int, int]]]
"""``(model_id, slices, since, until) -> {slice: (correct, labelled)}`` of ``model_id``'s predictions
(``inference_log``, every slice in one read)."""


class Publisher(Protocol):
    """The drift-event sink: publishes what it is handed, returns the ids acknowledged."""

    batch_size: int

    def ready(self, now: float) -> bool: ...
    def publish_pending(self, pending: Sequence[tuple[str, Any]], now: float) -> list[str]: ...


def publish_outbox(db: Engine, publisher: Publisher, now: float) -> int:
    """Hand the drift-event outbox's unpublished events (oldest first) to ``publisher`` and mark
    what it acknowledged; stops at its first failure. Returns how many were published."""
    if not publisher.ready(now):
        return 0
    sent = 0
    while True:
        pending = alert_store.unpublished_events(db, publisher.batch_size)
        if not pending:
            return sent
        acked = publisher.publish_pending([(event_id, payload) for event_id, _, payload in pending], now)
        alert_store.mark_published(db, acked, now)
        done = set(acked)
        for event_id, model_id, payload in pending:
            if event_id in done:  # ids, names and the action only: never feature values or payload text
                log.info("drift event %s published: %s %s %s %s/%s severity=%s action=%s", event_id,
                         payload.get("kind", payload.get("state")), model_id, payload.get("slice"),
                         payload.get("signal"), payload.get("statistic"), payload.get("severity"),
                         payload.get("action"))
        sent += len(acked)
        if len(acked) < len(pending) or len(pending) < publisher.batch_size:
            return sent


class Pusher(Protocol):
    def push(self, alerts: Iterable[Any], now: float) -> int: ...


class LabelFeed(Protocol):
    """The label log: every change with ``id > after`` of ``model_ids`` (None: all), in id order."""

    def __call__(self, after: int, model_ids: Sequence[str] | None) -> list[LoggedLabelChange]: ...


class MetricsView(Protocol):
    def update(self, snapshot: Snapshot, alerts: Any, *, incidents: Any = (), push_up: bool | None = None,
               promoted: Mapping[str, float] | None = None) -> None: ...


def fired_epoch(event: dict[str, Any]) -> float:
    """``fired_at`` of a drift event as epoch seconds."""
    return datetime.fromisoformat(str(event["fired_at"]).replace("Z", "+00:00")).timestamp()


@dataclass
class EventClock:
    """Event time as the clock: the latest ``served_at`` seen (monotone). For demo and replay."""

    now: float = 0.0

    def advance(self, ts: float) -> None:
        if ts > self.now:
            self.now = ts

    def __call__(self) -> float:
        return self.now


@dataclass
class PipelineStats:
    evaluations: int = 0
    drift_events: int = 0
    transitions: list[Transition] = field(default_factory=list)
    incident_transitions: list[IncidentTransition] = field(default_factory=list)


class Pipeline:
    """Wires the statistics engine to the alert evaluator and the sinks; thread-safe.

    ``on_drift_event`` is called with every new drift event (the demo prints them, replay writes
    them to JSONL). ``save_profile`` persists auto-built and inherited reference profiles (at the
    next :meth:`tick`, see :meth:`save_profiles`).

    Labels: with a ``label_feed`` (the store's label log) the statistics take label changes from
    the log at every :meth:`tick` (about once a second on the evaluating thread: a hung database
    never holds the consumer up), so a model's owner counts the labels of its predictions whichever replica
    consumed them; ``label_seq`` is the newest id applied and
    :meth:`floor` keeps a restored model from taking a change twice. Without a feed (no database)
    they come from the write results. ``positions`` (inference partition -> first offset not yet
    observed) and ``label_seq`` are what a checkpoint of the state covers.
    """

    def __init__(
        self,
        *,
        engine: StatsEngine,
        evaluator: AlertEvaluator,
        db: Engine | None,
        evaluate_every_s: float,
        publisher: Publisher | None = None,
        alertmanager: Pusher | None = None,
        metrics: MetricsView | None = None,
        save_profile: Callable[[Any], object] | None = None,
        on_drift_event: Callable[[dict[str, Any]], None] | None = None,
        on_snapshot: Callable[[Snapshot], None] | None = None,
        promotions: Iterable[PromotionEvent] = (),
        label_feed: LabelFeed | None = None,
        label_seq: int = 0,
        target_outcomes: TargetOutcomes | None = None,
        target_lookback_s: float = 3600.0,
        incidents: IncidentTracker | None = None,
        event_version: int = 2,
        reference_hashes: Callable[[], Mapping[str, str]] | None = None,
        load_reference: Callable[[str], Any] | None = None,
    ) -> None:
        if evaluate_every_s <= 0:
            raise ValueError("evaluate_every_s must be > 0")
        self.engine = engine
        self.evaluator = evaluator
        self.db = db
        self.evaluate_every_s = evaluate_every_s
        self.publisher = publisher
        self.alertmanager = alertmanager
        self.metrics = metrics
        self.save_profile = save_profile
        self.on_drift_event = on_drift_event
        self.on_snapshot = on_snapshot
        self.promotions: dict[str, PromotionEvent] = {}
        self.stats = PipelineStats()
        self.last_snapshot: Snapshot | None = None
        self._last_eval_at: float | None = None
        self._lock = threading.RLock()
        self.label_feed = label_feed
        self.label_seq = label_seq
        self._floors: dict[str, int] = {}
        self._feed_lock = threading.Lock()  # one reader of the label log at a time (I/O, not the state)
        self._io_lock = threading.Lock()  # evaluations' database writes and publications, in order
        self.positions: dict[int, int] = {}
        self._held_back: list[LoggedLabelChange] = []  # label changes waiting for their prediction
        self._unsaved: list[Any] = []  # profiles built or inherited, saved by the next tick
        # an evaluation's incidents and drift events whose save failed: saved with the next one's
        self._unsaved_incidents: list[Any] = []
        self._unsaved_events: list[tuple[dict[str, Any], str]] = []
        self._unsaved_inactive: list[Transition] = []  # alerts gone back to inactive (no state left)
        self.target_outcomes = target_outcomes
        self.incidents = incidents if incidents is not None else IncidentTracker()
        if event_version not in (1, 2):
            raise ValueError("event_version must be 1 or 2")
        self.event_version = event_version
        self.push_up: bool | None = None  # the last Alertmanager push: ok, failed, none yet
        self.target_lookback_s = float(target_lookback_s)
        self.reference_hashes = reference_hashes
        self.load_reference = load_reference
        self._references_checked_at: float | None = None
        # promotions whose target's outcomes are (re)read, with the time of the last read
        self._targets_due: dict[str, tuple[PromotionEvent, float | None]] = {}
        for p in promotions:
            self._promote(p)

    @property
    def lock(self) -> threading.RLock:
        """Held while the engine or the evaluator change; take it to rebuild state from outside."""
        return self._lock

    def _promote(self, p: PromotionEvent) -> None:
        prev = self.promotions.get(p.model_id)
        if prev is None or p.promoted_at >= prev.promoted_at:
            self.promotions[p.model_id] = p
            if p.rollback_target and self.target_outcomes is not None:
                self._targets_due[p.model_id] = (p, None)
            # a version that serves beside its target (a canary) is compared with it; a full
            # promotion of the same version ends the comparison
            canary = p.traffic_fraction is not None and p.traffic_fraction < 1.0 and bool(p.rollback_target)
            self.engine.set_canary(p.model_id, p.rollback_target if canary else None)
        # A freshly promoted version is compared with the profile of the version it replaces,
        # so a regression after promotion is not absorbed into an auto-built reference.
        if p.rollback_target and self.engine.reference(p.model_id) is None:
            target = self.engine.reference(p.rollback_target)
            if target is not None:
                inherited = replace(target, model_id=p.model_id, source=f"inherited:{target.id}")
                self.engine.set_reference(p.model_id, inherited)
                self._unsaved.append(inherited)

    @property
    def feed_lock(self) -> threading.Lock:
        """Held while the label log is read and applied; take it (before :attr:`lock`) to restore."""
        return self._feed_lock

    def floor(self, model_ids: Iterable[str], seq: int) -> None:
        """The models' state holds every label change up to ``seq`` (set after a restore); their
        held-back changes (all older) are part of it now."""
        ids = set(model_ids)
        for m in ids:
            self._floors[m] = seq
        self._held_back = [x for x in self._held_back if x.change.model_id not in ids and x.seq > seq]

    def forget(self, model_ids: Iterable[str]) -> None:
        """The models left this replica: drop their label floors and held-back label changes."""
        ids = set(model_ids)
        self._floors = {m: s for m, s in self._floors.items() if m not in ids}
        self._held_back = [x for x in self._held_back if x.change.model_id not in ids]

    def drop_unsaved(self, model_ids: Iterable[str]) -> None:
        """The models' alert states and incidents were just reloaded from the store (a takeover) or
        left this replica: drop their incidents and drift events still waiting for a save. Writing
        them later would overwrite what the store holds now (another replica's, or what was just
        restored); the restored state makes its transitions, and their events, again. Waits for an
        evaluation's save in flight (take it with :attr:`lock` held, never the other way round)."""
        ids = set(model_ids)
        with self._io_lock:
            self._unsaved_incidents = [i for i in self._unsaved_incidents if i.model_id not in ids]
            self._unsaved_events = [(e, fp) for e, fp in self._unsaved_events if e.get("model_id") not in ids]
            self._unsaved_inactive = [t for t in self._unsaved_inactive if t.alert.model_id not in ids]

    def covered_seq(self, model_id: str) -> int:
        """The label change id up to which the model's state holds every change (on the rows it holds)."""
        seq = max(self.label_seq, self._floors.get(model_id, 0))
        waiting = [x.seq for x in self._held_back if x.change.model_id == model_id]
        return min([seq, *(s - 1 for s in waiting)])

    def on_written(self, result: WriteResult, now: float) -> None:
        """Hand a durably written batch to the statistics (the consumer's ``on_written`` hook)."""
        with self._lock:
            for p in result.promotions:
                self._promote(p)
            labels = result.label_changes if self.label_feed is None else []
            # The state holds every row before the positions: a takeover's snapshot may already
            # hold a batch whose write committed while it ran (its hook runs before the batch is
            # handed over here), and a row stored by another writer after the snapshot comes back
            # as a duplicate. Observe exactly the rows at or past the positions, new or not.
            origins = result.new_origins
            if len(origins) != len(result.new_inferences):
                origins = [None] * len(result.new_inferences)
            fresh = [ev for ev, o in zip(result.new_inferences, origins, strict=True) if self._unheld(o)]
            fresh += [ev for ev, part, off in result.existing_inferences if self._unheld((part, off))]
            if fresh or labels:
                self.engine.observe(fresh, labels, now)
            for part, end in result.positions.items():
                self.positions[part] = max(end, self.positions.get(part, 0))
            self._unsaved.extend(self.engine.new_references())

    def _unheld(self, where: tuple[int, int] | None) -> bool:
        """A row read from ``where`` is not in the state yet (rows without a partition always count)."""
        return where is None or where[1] >= self.positions.get(where[0], 0)

    def _holds(self, where: tuple[int, int] | None) -> bool:
        """The state holds the row at ``where``, or never will through this replica's writes (no
        partition, or a partition it does not own): a label change on it can be applied."""
        return where is None or where[0] not in self.positions or where[1] < self.positions[where[0]]

    def save_profiles(self) -> int:
        """Persist the reference profiles built or inherited since the last call (on the evaluating
        thread, never the consumer's: a hung database must not hold ingestion); a failure keeps them
        for the next call. Returns how many were saved."""
        if self.save_profile is None:
            self._unsaved.clear()
            return 0
        with self._lock:
            todo, self._unsaved = self._unsaved, []
        for i, profile in enumerate(todo):
            try:
                self.save_profile(profile)
                log.info("reference profile %s of %s saved (%s, %d features)", profile.id, profile.model_id,
                         profile.source, len(profile.features))
            except (StoreError, SQLAlchemyError) as e:
                log.warning("could not save a reference profile, will retry (%s)", type(e).__name__)
                with self._lock:
                    self._unsaved[:0] = todo[i:]
                return i
        return len(todo)

    def pull_labels(self, now: float) -> int:
        """Apply the label changes logged since the last pull; returns how many were applied."""
        if self.label_feed is None:
            return 0
        with self._feed_lock:
            got = self.label_feed(self.label_seq, self.engine.models)
            with self._lock:
                todo = self._held_back + [x for x in got if x.seq > self._floors.get(x.change.model_id, 0)]
                # a change whose prediction the state does not hold yet (a write committed, not yet
                # handed over) waits for it: a label without its prediction's bucket would be lost
                ready = [x for x in todo if self._holds(x.where)]
                self._held_back = [x for x in todo if x not in ready]
                if ready:
                    self.engine.observe([], [x.change for x in ready], now)
                if got:
                    self.label_seq = got[-1].seq
            self._floors = {m: s for m, s in self._floors.items() if s > self.label_seq}
        return len(ready)

    def refresh_references(self, now: float) -> int:
        """Every ``REFERENCE_REFRESH_S``: the store's newest profile of each model (its content
        hash), and where it differs from the engine's, that profile loaded and set (its window starts
        afresh: the bins changed). A profile this monitor built itself is already the engine's (same
        hash). Returns how many were picked up; a failed read is tried at the next refresh."""
        if self.reference_hashes is None or self.load_reference is None:
            return 0
        if self._references_checked_at is not None and now - self._references_checked_at < REFERENCE_REFRESH_S:
            return 0
        self._references_checked_at = now
        try:
            newest = self.reference_hashes()
        except StoreError as e:
            log.warning("could not check for new reference profiles: %s", e)
            return 0
        picked = 0
        for model_id, content_hash in sorted(newest.items()):
            with self._lock:
                held = self.engine.reference(model_id)
            if held is not None and held.content_hash == content_hash:
                continue
            try:
                profile = self.load_reference(model_id)
            except StoreError as e:
                log.warning("could not load the new reference profile of %s: %s", model_id, e)
                continue
            if profile is None or profile.content_hash != content_hash:
                continue  # replaced again meanwhile: the next refresh takes the newest
            with self._lock:
                self.engine.set_reference(model_id, profile)
            log.info("reference profile %s (v%s) of %s picked up from the store", profile.id, profile.version, model_id)
            picked += 1
        return picked

    def load_targets(self, now: float) -> int:
        """Read the rollback targets' labelled outcomes per slice (``inference_log``, the target's
        predictions over ``target_lookback_s`` before the promotion) and hand them to the engine:
        right after a promotion names a target, then every ``TARGET_REFRESH_S`` while the promotion
        is younger than the lookback (labels of the target's last predictions keep arriving, and
        its rows may be written after the promotion event). A failed read is tried at the next tick."""
        with self._lock:
            due = [p for p, last in self._targets_due.values() if last is None or now - last >= TARGET_REFRESH_S]
        done = 0
        for p in due:
            assert self.target_outcomes is not None and p.rollback_target
            until = p.promoted_at.timestamp()
            try:
                outcomes = self.target_outcomes(
                    p.rollback_target, list(self.engine.slice_labels), until - self.target_lookback_s, until
                )
            except StoreError as e:
                log.warning("could not read the rollback target's outcomes: %s", e)
                return done
            with self._lock:
                if self._targets_due.get(p.model_id, (None, None))[0] is p:
                    self.engine.set_target_outcomes(p.model_id, p.rollback_target, outcomes)
                    if now - until >= self.target_lookback_s:
                        del self._targets_due[p.model_id]
                    else:
                        self._targets_due[p.model_id] = (p, now)
                    done += 1
        return done

    def due(self, now: float) -> float | None:
        """The aligned evaluation instant due at ``now``, or None."""
        instant = (now // self.evaluate_every_s) * self.evaluate_every_s
        if self._last_eval_at is not None and instant <= self._last_eval_at:
            return None
        return instant

    def tick(self, now: float) -> Snapshot | None:
        """Evaluate if an evaluation is due at ``now``; returns the snapshot when one ran. Called
        from one thread (the evaluating one)."""
        self.save_profiles()
        self.refresh_references(now)
        self.load_targets(now)
        self.pull_labels(now)  # the label changes logged since the last call
        with self._lock:
            instant = self.due(now)
        if instant is None:
            return None
        return self.evaluate(instant)

    def evaluate(self, now: float) -> Snapshot:
        """Compute the snapshot and the alert transitions under the lock (ingestion waits only for
        that), then persist, publish and push outside it (a slow database, broker or Alertmanager
        never holds ingestion up); evaluations' I/O runs one at a time, in order."""
        with self._lock:
            snapshot = self.engine.evaluate(now)
            transitions = self.evaluator.evaluate(snapshot, self.promotions, now)
            changes = self.incidents.update(transitions, now, states=self.evaluator.states,
                                            promotions=self.promotions)
            self.stats.incident_transitions.extend(changes)
            touched = [i for i in self.incidents.incidents if i.updated_at == now]
            self._last_eval_at = now
            self.last_snapshot = snapshot
            self.stats.evaluations += 1
            self.stats.transitions.extend(t for t in transitions if t.to_state in ("firing", "resolved"))
            if self.event_version == 2:
                events = [(build_incident_event(c), c.incident.incident_id) for c in changes]
            else:
                events = [
                    (build_drift_event(t.alert), t.fingerprint)
                    for t in transitions
                    if t.to_state in ("firing", "resolved")
                ]
            self.stats.drift_events += len(events)
            states = self.evaluator.states
            notifiable = self.incidents.notifiable(now) if self.alertmanager is not None else []
            if self.metrics is not None:
                # swaps the scrape view: no I/O
                self.metrics.update(snapshot, states, incidents=self.incidents.notifiable(now), push_up=self.push_up,
                                    promoted={m: p.promoted_at.timestamp() for m, p in self.promotions.items()})
        with self._io_lock:
            if self.db is not None:
                self._persist(states, transitions, touched, events, now)
            if self.on_drift_event is not None:
                for event, _ in events:
                    self.on_drift_event(event)
            self._publish(now, notifiable)
            if self.on_snapshot is not None:
                self.on_snapshot(snapshot)
        return snapshot

    def _persist(self, states: Mapping[str, Any], transitions: Sequence[Transition], touched: Sequence[Any],
                 events: Sequence[tuple[dict[str, Any], str]], now: float) -> None:
        """Save an evaluation's alert states, changed incidents and drift events in one transaction.
        A save failed by an outage (:class:`StoreUnavailable`) keeps the incidents, the drift events
        and the alerts gone back to inactive, and saves them with the next evaluation's (the current
        states are all saved every time); at most ``MAX_UNSAVED_EVENTS`` events wait, the oldest
        beyond are dropped and counted in the log. Rows the database refuses are not carried on: they
        would make every later save fail."""
        assert self.db is not None
        waiting = {i.incident_id: i for i in self._unsaved_incidents}
        waiting.update({i.incident_id: i for i in touched})
        pending = self._unsaved_events + list(events)
        # an alert that went back to inactive has no state left: its row is written from its
        # transition (a current state of the same alert wins, see alert_state_rows)
        inactive = [t for t in [*self._unsaved_inactive, *transitions] if t.to_state == "inactive"]
        try:
            evaluation_store.save_evaluation(self.db, states.values(), inactive, waiting.values(),
                                             [e for e, _ in pending], [fp for _, fp in pending], now)
        except StoreUnavailable as e:
            # an outage: the evaluator keeps its in-memory state; the next evaluation saves it again
            dropped = max(0, len(pending) - MAX_UNSAVED_EVENTS)
            self._unsaved_events = pending[dropped:]
            self._unsaved_incidents = list(waiting.values())
            self._unsaved_inactive = list({t.fingerprint: t for t in inactive}.values())
            log.warning("could not persist alerts, %d drift events wait for the next evaluation%s: %s",
                        len(self._unsaved_events), f" ({dropped} oldest dropped)" if dropped else "", e)
            return
        except StoreError as e:
            # the database refused the rows (not an outage): carrying them on would refuse every
            # later save too, so this evaluation's events and incidents are given up, as logged
            log.error("an evaluation's alerts could not be saved; %d drift events are not stored: %s",
                      len(pending), e)
        self._unsaved_events, self._unsaved_incidents, self._unsaved_inactive = [], [], []

    def flush(self, now: float) -> None:
        """Publish the drift event outbox and push alerts to Alertmanager (retries on later calls)."""
        with self._lock:
            notifiable = self.incidents.notifiable(now) if self.alertmanager is not None else []
        with self._io_lock:
            self._publish(now, notifiable)

    def _publish(self, now: float, notifiable: list[Any]) -> None:
        if self.publisher is not None and self.db is not None:
            try:
                publish_outbox(self.db, self.publisher, now)
            except (PublishError, StoreError) as e:
                log.warning("drift event publication delayed: %s", e)
        if self.alertmanager is not None:
            try:
                self.alertmanager.push(notifiable, now)
            except PublishError as e:
                if self.push_up is not False:  # once per state change, not every evaluation
                    log.warning("%s; retried every evaluation, Prometheus' incident rules page meanwhile", e)
                self.push_up = False
            else:
                if self.push_up is False:
                    log.info("Alertmanager push recovered")
                self.push_up = True
