"""Takeover from a checkpoint (real PostgreSQL): checkpoint + the rows and label changes after it
give the same window as the live run and as a full replay, and the counts match SQL over
``inference_log``. Also: the label log carries labels between replicas, a checkpoint that does not
fit (another window length, forged bytes) falls back to a full replay."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import msgspec
import numpy as np
import pytest
from sqlalchemy import Engine, text, update

from monitor.alerts.state import AlertEvaluator
from monitor.drift.engine import DriftEngine
from monitor.events import FeedbackEvent, InferenceEvent
from monitor.pipeline import Pipeline
from monitor.records import Origin
from monitor.stats.layout import CORRECT_N, CORRECT_SUM, EVENTS
from monitor.store.engine import make_engine
from monitor.store.migrate import upgrade
from monitor.store.repository import Repository
from monitor.store.tables import window_checkpoint
from monitor.store.window_state import WindowStateStore
from monitor.takeover import Takeover
from tests.stats_fixtures import StreamSpec, make_batch

pytestmark = pytest.mark.integration

T0 = 1_760_000_400.0  # a multiple of 60
TOPIC = "inference-events"
SLICES = {"language": ["en", "es"]}


def _engine(window_buckets: int = 30) -> DriftEngine:
    return DriftEngine(
        bucket_seconds=60, window_buckets=window_buckets, auto_reference_events=300, min_samples=50,
        protected_slices=SLICES, max_future_s=120.0,
    )


class Replica:
    """What ``build_monitor`` wires for one replica, without Kafka: engine, pipeline, takeover."""

    def __init__(self, db: Engine, window_buckets: int = 30) -> None:
        self.repo = Repository(db)
        self.store = WindowStateStore(db)
        self.engine = _engine(window_buckets)
        self.pipeline = Pipeline(
            engine=self.engine, evaluator=AlertEvaluator({}), db=None, evaluate_every_s=15.0,
            label_feed=lambda after, models: self.store.label_changes_after(after, models),
            label_seq=self.store.newest_label_seq(),
        )
        self.takeover = Takeover(
            engine=self.engine, pipeline=self.pipeline, repository=self.repo, store=self.store,
            bucket_seconds=60, window_buckets=window_buckets, label_chunk=7,
        )

    def write(
        self, inferences: list[tuple[InferenceEvent, int]], feedback: list[FeedbackEvent], now: float,
        partition: int = 0,
    ) -> None:
        """One consumer batch: write, then hand the result over as the consumer does."""
        out = self.repo.write([(ev, Origin(TOPIC, partition, off)) for ev, off in inferences], feedback, [], [], now)
        if inferences:
            out.result.positions = {partition: max(off for _, off in inferences) + 1}
        self.pipeline.on_written(out.result, now)
        self.pipeline.pull_labels(now)  # what the evaluation after it does first

    def restore(self, now: float, partitions: tuple[int, ...] = (0,)) -> Any:
        models = self.repo.window_models(list(partitions), self.takeover.window_start(now), now + 1)
        with self.pipeline.feed_lock, self.pipeline.lock:
            return self.takeover.restore(models, list(partitions), now)


def _feedback(rid: str, correct: bool, observed: float) -> FeedbackEvent:
    iso = datetime.fromtimestamp(observed, tz=UTC).isoformat()
    return msgspec.convert(
        {"schema_version": 1, "request_id": rid, "observed_at": iso, "was_correct": correct, "source": "human"},
        FeedbackEvent,
    )


@pytest.fixture
def db(pg_url: str) -> Iterator[Engine]:
    upgrade(pg_url)  # the migrations, 0004 included
    engine = make_engine(pg_url)
    yield engine
    engine.dispose()


def _traffic(live: Replica, other: Replica, *, checkpoint_after: int, batches: int = 12) -> float:
    """Batches of 150 events one minute apart; labels arrive one batch late, some before their
    prediction (pending), some are corrected later (a retraction), some are written by ``other``
    (a replica that consumed the feedback partition). Returns the clock after the last batch."""
    rng = np.random.default_rng(7)
    spec = StreamSpec(model_id="m1", n_numeric=2, lang_p=(0.6, 0.4, 0.0, 0.0, 0.0))
    offset, now = 0, T0
    held: list[Any] = []  # labels of the previous batch
    old: list[Any] = []
    for k in range(batches):
        now = T0 + 60 * (k + 1)
        events, labels = make_batch(rng, spec, 150, now - 60, now)
        ours = [(ev, offset + i) for i, ev in enumerate(events)]
        offset += len(events)
        early = [_feedback(lc.request_id, lc.new.was_correct, now) for lc in labels[:10]]  # pending first
        late = [_feedback(lc.request_id, lc.new.was_correct, now) for lc in held[10:]]
        corrections = [_feedback(lc.request_id, not lc.new.was_correct, now + 1) for lc in old[:20]]
        if early:
            other.write([], early, now)
        live.write(ours, late, now)
        if corrections:
            other.write([], corrections, now + 1)
        if k == checkpoint_after:
            assert live.takeover.checkpoint(now) == 1
        old, held = held, labels
    live.pipeline.pull_labels(now)
    return now


def _sql_counts(db: Engine, since: float) -> dict[str, tuple[int, int, int]]:
    """Per slice (aggregate, language=en, language=es): events, labelled, correct — from SQL alone."""
    q = text(
        "SELECT slice->>'language' AS lang, count(*) AS n, count(was_correct) AS l,"
        " count(*) FILTER (WHERE was_correct) AS c FROM inference_log WHERE served_at >= :since GROUP BY 1"
    )
    with db.connect() as conn:
        rows = {r.lang: (r.n, r.l, r.c) for r in conn.execute(q, {"since": datetime.fromtimestamp(since, tz=UTC)})}
    agg = tuple(sum(v[i] for v in rows.values()) for i in range(3))
    return {"all": agg, "language=en": rows.get("en", (0, 0, 0)), "language=es": rows.get("es", (0, 0, 0))}


def _counts(r: Replica, now: float) -> dict[str, tuple[int, int, int]]:
    t = r.engine.window_totals("m1", now)
    labels = ["all", "language=en", "language=es"]
    return {lab: (int(t.scalars[s][EVENTS]), int(t.scalars[s][CORRECT_N]), int(t.scalars[s][CORRECT_SUM]))
            for s, lab in enumerate(labels)}


def _same_window(a: Replica, b: Replica, now: float) -> None:
    ta, tb = a.engine.window_totals("m1", now), b.engine.window_totals("m1", now)
    np.testing.assert_array_equal(ta.hist, tb.hist)
    np.testing.assert_array_equal(ta.sketch, tb.sketch)
    np.testing.assert_array_equal(ta.scalars, tb.scalars)


def _new_replica(db: Engine, live: Replica, window_buckets: int = 30) -> Replica:
    r = Replica(db, window_buckets)
    profile = live.engine.reference("m1")
    assert profile is not None
    r.engine.set_reference("m1", profile)
    return r


def test_checkpoint_and_tail_equal_live_full_replay_and_sql(db: Engine) -> None:
    live, other = Replica(db), Replica(db)
    now = _traffic(live, other, checkpoint_after=5)
    assert "m1" not in other.engine.models  # labels it wrote went to the owner, not into a buffer

    fast = _new_replica(db, live)
    took = fast.restore(now)
    assert took.from_checkpoint == 1
    assert took.rows_replayed == 6 * 150  # only the six batches after the checkpoint
    assert took.label_changes_applied > 0  # corrections of rows the checkpoint held

    with db.begin() as conn:
        conn.execute(window_checkpoint.delete())
    full = _new_replica(db, live)
    took_full = full.restore(now)
    assert took_full.from_checkpoint == 0 and took_full.label_changes_applied == 0

    _same_window(live, fast, now)
    _same_window(live, full, now)
    since = T0 + 60 * 12 - 30 * 60  # the window (30 buckets) covers every batch here
    sql = _sql_counts(db, min(since, T0))
    assert _counts(fast, now) == sql
    assert sql["all"][1] > 0 and sql["language=es"][0] > 0


def test_labels_after_the_takeover_are_counted_once(db: Engine) -> None:
    live, other = Replica(db), Replica(db)
    fast = Replica(db)  # running since before the traffic: its label log position is 0
    now = _traffic(live, other, checkpoint_after=8)
    profile = live.engine.reference("m1")
    assert profile is not None
    fast.engine.set_reference("m1", profile)
    fast.restore(now)
    # a correction logged after the restore's snapshot reaches the new owner exactly once
    with db.connect() as conn:
        rid, was = conn.execute(text(
            "SELECT request_id, was_correct FROM inference_log WHERE was_correct IS NOT NULL"
            " ORDER BY served_at LIMIT 1"
        )).one()
    before = _counts(fast, now)["all"]
    other.write([], [_feedback(rid, not was, now + 30)], now + 30)
    assert fast.pipeline.pull_labels(now + 30) == 1
    assert fast.pipeline.pull_labels(now + 31) == 0
    after = _counts(fast, now)["all"]
    assert after[0] == before[0] and after[1] == before[1]
    assert after[2] == before[2] + (1 if not was else -1)
    assert _counts(fast, now) == _sql_counts(db, T0)


def test_a_checkpoint_that_does_not_fit_is_ignored(db: Engine) -> None:
    live, other = Replica(db), Replica(db)
    now = _traffic(live, other, checkpoint_after=5)
    longer = _new_replica(db, live, window_buckets=40)  # configured with another window length
    assert longer.restore(now).from_checkpoint == 0

    forged = pickle.dumps(__import__("os").system)
    with db.begin() as conn:
        conn.execute(update(window_checkpoint).values(state=__import__("zlib").compress(forged)))
    victim = _new_replica(db, live)
    assert victim.restore(now).from_checkpoint == 0
    _same_window(live, victim, now)


def test_prune_keeps_what_a_window_needs(db: Engine) -> None:
    live, other = Replica(db), Replica(db)
    now = _traffic(live, other, checkpoint_after=5, batches=8)
    assert live.takeover.prune(now) == (0, 0)  # everything is younger than the window
    later = now + 2 * 30 * 60 + 60
    changes, checkpoints = live.takeover.prune(later)
    assert changes > 0 and checkpoints == 1
    assert WindowStateStore(db).label_changes_after(0, None) == []


def test_rows_a_stale_owner_stored_after_the_takeover_are_counted_by_the_new_owner(db: Engine) -> None:
    live, other = Replica(db), Replica(db)
    now = _traffic(live, other, checkpoint_after=5)
    new_owner = _new_replica(db, live)
    new_owner.restore(now)
    # the old owner, not yet aware it lost the partition, stores one more batch; the new owner then
    # reads the same records from the last committed offset and finds them stored already
    events, _ = make_batch(np.random.default_rng(99), StreamSpec(model_id="m1", n_numeric=2), 120, now, now + 50)
    batch = [(ev, 12 * 150 + i) for i, ev in enumerate(events)]
    live.write(batch, [], now + 55)
    new_owner.write(batch, [], now + 56)
    assert _counts(new_owner, now + 56) == _sql_counts(db, T0)
    new_owner.write(batch, [], now + 57)  # a second redelivery of rows it now holds: not counted again
    assert _counts(new_owner, now + 57) == _sql_counts(db, T0)


def test_a_checkpoint_holding_rows_of_a_partition_now_owned_elsewhere_is_not_used(db: Engine) -> None:
    """A producer that spreads one model over partitions: the checkpoint of the replica that held
    partitions 0 and 1 cannot serve the replica that takes over partition 1 only."""
    live = Replica(db)
    rng = np.random.default_rng(3)
    spec = StreamSpec(model_id="m1", n_numeric=2)
    offsets = {0: 0, 1: 0}
    now = T0
    for k in range(8):
        now = T0 + 60 * (k + 1)
        for part in (0, 1):
            events, _ = make_batch(rng, spec, 100, now - 60 + part, now)  # t0 names the request ids
            live.write([(ev, offsets[part] + i) for i, ev in enumerate(events)], [], now, partition=part)
            offsets[part] += len(events)
    assert live.takeover.checkpoint(now) == 1
    one = _new_replica(db, live)
    took = one.restore(now, partitions=(1,))
    assert took.from_checkpoint == 0 and took.rows_replayed == 800
    assert _counts(one, now)["all"][0] == 800
    both = _new_replica(db, live)
    assert both.restore(now, partitions=(0, 1)).from_checkpoint == 1
    _same_window(live, both, now)


def test_a_batch_committed_before_the_takeover_and_handed_over_after_it_counts_once(db: Engine) -> None:
    """The consumer runs the takeover hook before it hands over a batch whose write was in flight;
    when that write committed before the takeover's snapshot, the snapshot already holds its rows."""
    live, other = Replica(db), Replica(db)
    now = _traffic(live, other, checkpoint_after=5)
    events, _ = make_batch(np.random.default_rng(5), StreamSpec(model_id="m1", n_numeric=2), 90, now, now + 40)
    batch = [(ev, 12 * 150 + i) for i, ev in enumerate(events)]
    out = live.repo.write([(ev, Origin(TOPIC, 0, off)) for ev, off in batch], [], [], [], now + 45)
    out.result.positions = {0: 12 * 150 + len(batch)}
    live.restore(now + 46)  # the hook, after a rebalance
    live.pipeline.on_written(out.result, now + 46)  # then the batch in flight is handed over
    assert _counts(live, now + 46) == _sql_counts(db, T0)
    assert _counts(live, now + 46)["all"][0] == 12 * 150 + 90


def test_a_label_pulled_before_its_prediction_is_handed_over_waits_for_it(db: Engine) -> None:
    """The evaluating thread can read a label change from the log between the commit of its
    prediction and the hand-over of that batch; the label must not be lost for want of a bucket."""
    live, other = Replica(db), Replica(db)
    now = _traffic(live, other, checkpoint_after=5)
    events, labels = make_batch(np.random.default_rng(8), StreamSpec(model_id="m1", n_numeric=2), 80,
                                now + 60, now + 100)  # a minute no row of which is held yet
    batch = [(ev, 12 * 150 + i) for i, ev in enumerate(events)]
    feedback = [_feedback(lc.request_id, lc.new.was_correct, now + 101) for lc in labels]
    out = live.repo.write([(ev, Origin(TOPIC, 0, off)) for ev, off in batch], feedback, [], [], now + 102)
    out.result.positions = {0: 12 * 150 + len(batch)}
    assert live.pipeline.pull_labels(now + 102) == 0  # held back: the batch is not handed over yet
    assert live.pipeline.covered_seq("m1") < WindowStateStore(db).newest_label_seq()
    live.pipeline.on_written(out.result, now + 103)
    assert live.pipeline.pull_labels(now + 103) == len(labels)
    assert _counts(live, now + 103) == _sql_counts(db, T0)
