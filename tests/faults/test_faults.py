"""Fault cases: real consumer processes (``tests.faults.runner``) against the real Tansu broker and the
real PostgreSQL, killed, stopped, frozen and terminated at seeded random points.

Every case ends with the same verdict: every request id produced has exactly one row in
``inference_log`` and nothing else is there (see ``Rows.verify``), the group's committed offsets
equal the end offsets, every SIGTERMed member exited with code 0 within 10 s, and the window state
of each member stopped at the end equals a recompute from ``inference_log`` (``finish_case``).
Members are full monitors (``slicewatch run``: statistics, label log, checkpoints every 2 s), and
the traffic carries labels, so takeovers start from checkpoints and labels cross replicas. ``seed`` makes the
random points of one run reproducible; see README.md in this directory.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from monitor.embedded.postgres import PostgresServer
from monitor.embedded.tansu import TansuBroker
from tests.faults.harness import (
    SIGTERM_LIMIT_S,
    Figures,
    Fleet,
    Rows,
    Traffic,
    assert_exactly_once,
    backlog_size,
    drain_timeout,
    finish_case,
    hung_postgres,
    make_topics,
    offset_gaps,
    produce_range,
    rng_for,
    until,
)
from tests.ingest_fixtures import FAST_GROUP

pytestmark = [pytest.mark.integration, pytest.mark.faults]

SESSION_S = FAST_GROUP["session_timeout_ms"] / 1000  # what the runner's members use


def assert_clean_exits(figures: Figures, codes: list[int | None], what: str) -> None:
    slow = [t for t in figures.sigterm_exit_s if t >= SIGTERM_LIMIT_S]
    assert all(c == 0 for c in codes), f"{what}: exit codes after SIGTERM {codes} (None: still running after 15 s)"
    assert not slow, f"{what}: SIGTERM exits took {figures.sigterm_exit_s} s (limit {SIGTERM_LIMIT_S} s)"


# ---------------------------------------------------------------------------------------- case 1


def test_rebalance_under_backlog(broker: TansuBroker, topic_prefix: str, pg_url: str, tmp_path: Path,
                                 seed: int, figures: Figures) -> None:
    """6 partitions, a backlog, two members; a third joins at 5-15% of the backlog and, 0-1 s after
    the group is stable again, one of the three leaves (SIGTERM). A trickle of new events keeps
    flowing from the join until 2-4 s after the leave: a rebalance round on Tansu takes 5-8 s, in
    which a 30,000-event backlog is gone, and the leave must still happen mid-stream."""
    rng = rng_for("rebalance", seed)
    n, partitions = backlog_size(), 6
    bootstrap = broker.bootstrap_servers
    topics = make_topics(bootstrap, topic_prefix, partitions)
    produce_range(bootstrap, topics.inference, partitions, 0, n)
    rows = Rows(pg_url)
    fleet = Fleet(bootstrap, topic_prefix, pg_url, tmp_path, max_poll_records=rng.choice([100, 200, 500]))
    codes: list[int | None] = []
    try:
        first, second, joiner = (fleet.start(hold=True) for _ in range(3))
        first.go()
        second.go()
        leaver = rng.choice([first, second, joiner])
        rows.wait_count(int(n * rng.uniform(0.05, 0.15)), drain_timeout(n), fleet)
        with Traffic(bootstrap, topics.inference, partitions, 1000, 10**6, start=n) as traffic:
            joiner.go()
            joined_with = rows.count()
            stable_after_join = fleet.wait_stable(partitions)  # a LeaveGroup in an open round wedges Tansu
            time.sleep(rng.uniform(0.0, 1.0))
            left_with, produced_at_leave = rows.count(), traffic.produced
            rc, took = leaver.terminate()
            figures.sigterm_exit_s.append(round(took, 2))
            codes.append(rc)
            time.sleep(rng.uniform(2.0, 4.0))
            traffic.stop()
            assert traffic.error is None, f"producing failed: {traffic.error!r}"
        total = traffic.produced
        codes += finish_case(fleet, rows, total, topics, partitions, figures)
        gaps_after_stop = offset_gaps(bootstrap, fleet.group, topics, partitions)
        figures.notes.update(max_poll_records=fleet.max_poll_records, backlog=n, joined_with_rows=joined_with,
                             left_with_rows=left_with, produced_at_leave=produced_at_leave, leaver=leaver.name,
                             stable_after_join_s=round(stable_after_join, 1))
    finally:
        fleet.close()
        rows.dispose()
    assert_exactly_once(figures, fleet)
    assert joined_with < n, "the backlog drained before the third member joined"
    assert left_with < produced_at_leave < total, "the leave did not happen mid-stream"
    assert not gaps_after_stop, f"committed offsets moved after the members stopped: {gaps_after_stop}"
    assert_clean_exits(figures, codes, "rebalance")


# ---------------------------------------------------------------------------------------- case 2


def test_sigkill_with_restarts(broker: TansuBroker, topic_prefix: str, pg_url: str, tmp_path: Path,
                               seed: int, figures: Figures) -> None:
    """Two members on 3 partitions while events are produced; once the group is stable, 3-5 SIGKILLs
    of a random member at random points (0.5-3.5 s apart), each followed by a replacement after a
    random pause of 0-1.5 s."""
    rng = rng_for("sigkill", seed)
    n, partitions = backlog_size() // 2, 3
    kills = rng.randint(3, 5)
    rate = max(500, int(n / (5 + 4.5 * kills)))  # production lasts about as long as the kills
    bootstrap = broker.bootstrap_servers
    topics = make_topics(bootstrap, topic_prefix, partitions)
    rows = Rows(pg_url)
    fleet = Fleet(bootstrap, topic_prefix, pg_url, tmp_path, max_poll_records=rng.choice([100, 500, 2000]))
    produced_at_kill: list[int] = []
    try:
        fleet.start()
        fleet.start()
        with Traffic(bootstrap, topics.inference, partitions, rate, n) as traffic:
            fleet.wait_stable(partitions)
            for _ in range(kills):
                # Kills may land in a JoinGroup/SyncGroup round on purpose (a SIGKILLed member sends
                # no LeaveGroup, so this does not wedge Tansu's coordinator; see fleet.wait_stable).
                time.sleep(rng.uniform(0.5, 3.5))
                victim = rng.choice(fleet.running())
                victim.kill()
                produced_at_kill.append(traffic.produced)
                time.sleep(rng.uniform(0.0, 1.5))
                fleet.start()
            traffic.wait(drain_timeout(n))
        codes = finish_case(fleet, rows, n, topics, partitions, figures)
        figures.notes.update(kills=kills, rate=rate, produced_at_kill=produced_at_kill,
                             max_poll_records=fleet.max_poll_records)
    finally:
        fleet.close()
        rows.dispose()
    assert_exactly_once(figures, fleet)
    assert produced_at_kill[0] < n, "production ended before the first kill"
    assert_clean_exits(figures, codes, "after the kills")


# ---------------------------------------------------------------------------------------- case 3


def test_stale_member_sigstop(broker: TansuBroker, topic_prefix: str, pg_url: str, tmp_path: Path,
                              seed: int, figures: Figures) -> None:
    """Two members on 4 partitions under traffic; one is SIGSTOPped beyond the session timeout
    (the runner's 6 s), the other takes all partitions over, then the stale one is SIGCONTed."""
    rng = rng_for("stale", seed)
    n, partitions = backlog_size() // 2, 4
    rate = max(500, n // 25)  # ~25 s of traffic: SIGCONT comes ~10-18 s in
    bootstrap = broker.bootstrap_servers
    topics = make_topics(bootstrap, topic_prefix, partitions)
    rows = Rows(pg_url)
    fleet = Fleet(bootstrap, topic_prefix, pg_url, tmp_path, max_poll_records=rng.choice([200, 500, 1000]))
    everything = set(range(partitions))
    try:
        a, b = fleet.start(hold=True), fleet.start(hold=True)
        a.go()
        b.go()
        with Traffic(bootstrap, topics.inference, partitions, rate, n) as traffic:
            until(lambda: bool(a.assignment() and b.assignment()) and a.assignment() | b.assignment() == everything,
                  60, "both members assigned")
            time.sleep(rng.uniform(0.5, 3.0))
            stale, other = rng.sample([a, b], 2)
            before = rows.per_partition()
            stale.signal(signal.SIGSTOP)
            stopped = time.monotonic()
            until(lambda: other.assignment() == everything, SESSION_S + 20, "the other member takes over")
            takeover_s = time.monotonic() - stopped
            time.sleep(max(0.0, stopped + SESSION_S + rng.uniform(2.0, 6.0) - time.monotonic()))
            during = rows.per_partition()
            stale.signal(signal.SIGCONT)
            stopped_for = time.monotonic() - stopped
            produced_at_cont = traffic.produced
            traffic.wait(drain_timeout(n))
        alive_at_end: list[bool] = []
        codes = finish_case(fleet, rows, n, topics, partitions, figures,
                            before_stop=lambda: alive_at_end.append(stale.alive() and other.alive()))
        alive = alive_at_end[0]
        figures.notes.update(
            stopped_for_s=round(stopped_for, 1), takeover_s=round(takeover_s, 1),
            partitions_progressed_while_stopped=sorted(p for p in everything if during.get(p, 0) > before.get(p, 0)),
            produced_at_sigcont=produced_at_cont, max_poll_records=fleet.max_poll_records,
        )
    finally:
        fleet.close()
        rows.dispose()
    assert_exactly_once(figures, fleet)
    assert stopped_for > SESSION_S and produced_at_cont < n
    assert alive, "a member died after the stale member came back"
    assert_clean_exits(figures, codes, "after the stale member came back")


# ---------------------------------------------------------------------------------------- case 4


def test_sigterm_with_postgres_hung(broker: TansuBroker, topic_prefix: str, own_postgres: PostgresServer,
                                    tmp_path: Path, seed: int, figures: Figures) -> None:
    """One member writing under traffic; PostgreSQL (postmaster and backends) is SIGSTOPped, the
    member is SIGTERMed a random 0.5-13 s later (before and after the 10 s stall watch): it must exit
    within 10 s. PostgreSQL is SIGCONTed, a new member catches up."""
    rng = rng_for("pg-hung", seed)
    n, partitions = backlog_size() // 3, 3
    rate = max(1000, n // 15)
    bootstrap, url = broker.bootstrap_servers, own_postgres.url
    topics = make_topics(bootstrap, topic_prefix, partitions)
    rows = Rows(url)
    fleet = Fleet(bootstrap, topic_prefix, url, tmp_path, max_poll_records=rng.choice([200, 500, 1000]))
    codes: list[int | None] = []
    try:
        member = fleet.start()
        with Traffic(bootstrap, topics.inference, partitions, rate, n) as traffic:
            rows.wait_count(min(n // 4, rate), 60, fleet)
            time.sleep(rng.uniform(0.0, 2.0))
            hang_s = rng.uniform(0.5, 13.0)
            with hung_postgres(own_postgres.data) as pids:
                time.sleep(hang_s)
                rc, took = member.terminate()
            figures.sigterm_exit_s.append(round(took, 2))
            codes.append(rc)
            fleet.start()
            traffic.wait(drain_timeout(n))
        codes += finish_case(fleet, rows, n, topics, partitions, figures)
        figures.notes.update(hung_before_sigterm_s=round(hang_s, 1), postgres_pids=len(pids),
                             max_poll_records=fleet.max_poll_records)
    finally:
        fleet.close()
        rows.dispose()
    assert_exactly_once(figures, fleet)
    assert_clean_exits(figures, codes, "SIGTERM with PostgreSQL hung")


# ---------------------------------------------------------------------------------------- case 5


def test_sigterm_under_load(broker: TansuBroker, topic_prefix: str, pg_url: str, tmp_path: Path,
                            seed: int, figures: Figures) -> None:
    """Two members on 3 partitions with a backlog and traffic; three SIGTERMs of a random member at
    random points, each must exit 0 within 10 s; each is replaced at once. A SIGTERMed member sends a
    LeaveGroup, so each round waits for a stable group first (see ``Fleet.wait_stable``)."""
    rng = rng_for("sigterm", seed)
    n, partitions = backlog_size() // 2, 3
    backlog = n // 2
    rate = max(300, (n - backlog) // 35)  # traffic through the three rounds (~10 s each)
    bootstrap = broker.bootstrap_servers
    topics = make_topics(bootstrap, topic_prefix, partitions)
    produce_range(bootstrap, topics.inference, partitions, 0, backlog)
    rows = Rows(pg_url)
    fleet = Fleet(bootstrap, topic_prefix, pg_url, tmp_path, max_poll_records=rng.choice([500, 2000, 5000]))
    codes: list[int | None] = []
    rows_at_term: list[int] = []
    try:
        fleet.start()
        fleet.start()
        with Traffic(bootstrap, topics.inference, partitions, rate, n - backlog, start=backlog) as traffic:
            for _ in range(3):
                fleet.wait_stable(partitions)
                time.sleep(rng.uniform(0.0, 2.0))
                rows_at_term.append(rows.count())
                rc, took = rng.choice(fleet.running()).terminate()
                figures.sigterm_exit_s.append(round(took, 2))
                codes.append(rc)
                fleet.start()
            traffic.wait(drain_timeout(n))
        codes += finish_case(fleet, rows, n, topics, partitions, figures)
        figures.notes.update(rows_at_sigterm=rows_at_term, max_poll_records=fleet.max_poll_records)
    finally:
        fleet.close()
        rows.dispose()
    assert_exactly_once(figures, fleet)
    assert rows_at_term[0] < n, "everything was written before the first SIGTERM"
    assert_clean_exits(figures, codes, "SIGTERM under load")


# ---------------------------------------------------------------------------------------- case 6


def test_sigterm_with_postgres_hung_during_rebalance(broker: TansuBroker, topic_prefix: str,
                                                     own_postgres: PostgresServer, tmp_path: Path,
                                                     seed: int, figures: Figures) -> None:
    """Case 4 plus a rebalance: while PostgreSQL is SIGSTOPped a second member joins the group, then
    the first member is SIGTERMed and must exit within 10 s (an earlier consumer hung here, see
    README.md). Even seeds: the first member is busy (a write in flight); odd seeds: it is idle
    (caught up), so only the dead-letter sweep after the rebalance touches the database. Recovery
    runs in a fresh group (the old one may still wait for the frozen members' JoinGroup round), and
    must still give exactly-once rows."""
    rng = rng_for("pg-hung-rebalance", seed)
    busy = seed % 2 == 0
    n, partitions = (backlog_size() // 3 if busy else 3000), 3
    rate = max(1000, n // 15)
    bootstrap, url = broker.bootstrap_servers, own_postgres.url
    topics = make_topics(bootstrap, topic_prefix, partitions)
    rows = Rows(url)
    fleet = Fleet(bootstrap, topic_prefix, url, tmp_path)
    recovery = Fleet(bootstrap, topic_prefix, url, tmp_path, name="recovery")
    codes: list[int | None] = []
    try:
        if not busy:
            produce_range(bootstrap, topics.inference, partitions, 0, n)
        first = fleet.start()
        with Traffic(bootstrap, topics.inference, partitions, rate, n if busy else 0) as traffic:
            rows.wait_count(min(n, rate), 60, fleet)
            joiner = fleet.start(hold=True)
            time.sleep(rng.uniform(0.5, 2.0))
            with hung_postgres(own_postgres.data):
                joiner.go()
                # The joiner only sends its JoinGroup after its ingest maintenance and dead-letter
                # sweep have each waited out the 5 s connect timeout; then the group rebalances.
                time.sleep(rng.uniform(14.0, 18.0))
                rc, took = first.terminate()
            figures.sigterm_exit_s.append(round(took, 2))
            codes.append(rc)
            traffic.wait(drain_timeout(n))
        joiner.kill()
        recovery.start()
        codes += finish_case(recovery, rows, n, topics, partitions, figures)
        figures.notes.update(busy=busy)
    finally:
        fleet.close()
        recovery.close()
        rows.dispose()
    assert_exactly_once(figures, fleet)
    assert_clean_exits(figures, codes, "SIGTERM with PostgreSQL hung during a rebalance")
