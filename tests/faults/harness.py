"""Process, broker and database helpers for the fault suite. Nothing here is mocked: members are
``python -m tests.faults.runner`` processes, events go through the real broker, rows are counted in
the real PostgreSQL."""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition
from sqlalchemy import text

from monitor.config import (
    DatabaseSettings,
    IngestSettings,
    KafkaSettings,
    RetrySettings,
    Settings,
    StatsSettings,
    TopicSettings,
)
from monitor.drift.engine import DriftEngine
from monitor.ingest.topics import ensure_topics
from monitor.stats.window import window_bounds
from monitor.store import profiles as profile_store
from monitor.store.engine import make_engine
from monitor.store.migrate import upgrade
from monitor.store.repository import Repository
from tests.ingest_fixtures import FAST_GROUP, Topics, feedback_dict, inference, inference_dict, raw

ROOT = Path(__file__).resolve().parents[2]
SIGTERM_LIMIT_S = 10.0  # README, "Delivery guarantees": SIGTERM ... exits within 10 seconds
MODELS = 12  # model ids (message keys); events are spread over the partitions explicitly
LABEL_LAG = 50  # event i carries the label of event i - LABEL_LAG when that one is a multiple of 3
PROTECTED = {"tier": ["free", "pro"]}


def monitor_settings(bootstrap: str, prefix: str, url: str, group: str, *, max_poll_records: int = 500,
                     session_timeout_ms: int = FAST_GROUP["session_timeout_ms"],
                     heartbeat_interval_ms: int = FAST_GROUP["heartbeat_interval_ms"],
                     client_id: str = "slicewatch") -> Settings:
    """What a member runs with: ``slicewatch run`` settings for the case's topics and database, a
    short checkpoint period so takeovers start from checkpoints, quick retries."""
    topics = Topics.with_prefix(prefix)
    return Settings(
        kafka=KafkaSettings(
            bootstrap_servers=bootstrap, group_id=group, client_id=client_id,
            topics=TopicSettings(inference=topics.inference, feedback=topics.feedback,
                                 promotions=topics.promotions, drift_events=f"{prefix}-drift"),
            max_poll_records=max_poll_records, poll_timeout_ms=200,
            session_timeout_ms=session_timeout_ms, heartbeat_interval_ms=heartbeat_interval_ms,
        ),
        database=DatabaseSettings(url=url),
        ingest=IngestSettings(retry=RetrySettings(initial_s=0.2, max_s=2.0)),
        stats=StatsSettings(checkpoint_every_s=2.0, evaluate_every_s=5.0, protected_slices=PROTECTED,
                            auto_reference_events=300),
    )


def seed_profiles(url: str) -> None:
    """Reference profiles of the case's models, stored before any member starts, so every member
    (and the recompute) uses the same ones."""
    settings = monitor_settings("127.0.0.1:1", "seed", url, "seed")
    engine = DriftEngine(auto_reference_events=settings.stats.auto_reference_events, protected_slices=PROTECTED)
    events = [inference(i, model=f"m{i % MODELS}") for i in range(settings.stats.auto_reference_events * MODELS)]
    engine.observe(events, [], events[-1].served_at.timestamp())
    db = make_engine(url)
    try:
        for profile in engine.new_references():
            profile_store.save_profile(db, profile, source="fault-suite")
    finally:
        db.dispose()


def backlog_size(default: int = 30_000) -> int:
    """FAULTS_BACKLOG (``make faults``: 200,000); ~30,000 keeps ``make test`` quick."""
    return int(os.environ.get("FAULTS_BACKLOG", default))


def request_id(i: int) -> str:
    return str(inference_dict(i)["request_id"])


# ----------------------------------------------------------------------------- figures / report


@dataclass
class Figures:
    """One test's figures; appended as one JSON line to $FAULTS_REPORT by the ``figures`` fixture."""

    case: str
    seed: int
    passed: bool = False
    outcome: str = ""  # passed, failed, xfailed (a known defect), xpassed
    produced: int = 0
    rows: int = 0
    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0
    sigterm_exit_s: list[float] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    def append_to(self, path: str) -> None:
        line = json.dumps({**asdict(self), "worst_sigterm_exit_s": max(self.sigterm_exit_s, default=None)})
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")


# ----------------------------------------------------------------------------- consumer processes


class Member:
    """One consumer-group member: a ``tests.faults.runner`` process. stderr goes to ``log``."""

    def __init__(self, name: str, args: list[str], log_dir: Path, hold: bool = False) -> None:
        self.name = name
        self.log = log_dir / f"{name}.log"
        self.assignment_file = log_dir / f"{name}.assignment.json"
        self._log_file = open(self.log, "ab")  # noqa: SIM115 - closed in reap()
        self.proc: subprocess.Popen[str] = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.runner", *args, "--client-id", name,
             "--assignment-file", str(self.assignment_file), *(["--hold"] if hold else [])],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log_file, text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        self.joined = not hold  # False until go(): a held member is not in the group yet
        self._expect("loaded" if hold else "ready", 60)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _expect(self, word: str, timeout_s: float) -> None:
        out: IO[str] | None = self.proc.stdout
        assert out is not None
        ready, _, _ = select.select([out], [], [], timeout_s)
        line = out.readline().strip() if ready else ""
        assert line == word, f"{self.name}: expected {word!r}, got {line!r} (see {self.log})"

    def go(self) -> None:
        """Release a member started with ``hold=True``: it builds its consumer and joins the group."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        self._expect("ready", 30)
        self.joined = True

    def assignment(self, view: str = "client") -> set[int]:
        """The inference partitions this member holds: ``client`` is the Kafka client's view, ``hook``
        the last ``on_assigned`` call's (see ``tests.faults.runner.AssignmentReport``)."""
        try:
            return set(json.loads(self.assignment_file.read_text())[view] or ())
        except (OSError, ValueError, KeyError, TypeError):
            return set()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        if self.alive():
            self.proc.send_signal(sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, limit_s: float = SIGTERM_LIMIT_S) -> tuple[int | None, float]:
        """SIGTERM; wait up to ``limit_s`` (+5 s to tell 'slow' from 'hung'); (exit code, seconds).
        A member still alive then is SIGKILLed and reported with exit code None."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc: int | None = self.proc.wait(limit_s + 5)
        except subprocess.TimeoutExpired:
            rc = None
            self.signal(signal.SIGUSR1)  # the runner dumps its threads' stacks into the log
            time.sleep(1.0)
            self.kill()
        return rc, time.monotonic() - t0

    def reap(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGCONT)
            self.kill()
        self._log_file.close()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


class Fleet:
    """The members of one consumer group; every member still running at the end is killed."""

    def __init__(self, bootstrap: str, prefix: str, url: str, log_dir: Path, max_poll_records: int = 500,
                 extra: list[str] | None = None, name: str = "member") -> None:
        self.name = name
        self.bootstrap, self.prefix, self.url, self.log_dir = bootstrap, prefix, url, log_dir
        self.group = f"g-{uuid.uuid4().hex[:8]}"
        self.max_poll_records = max_poll_records
        self.state_dir = log_dir / f"state-{self.group}"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.args = [bootstrap, prefix, url, self.group, "--max-poll-records", str(max_poll_records),
                     "--state-dir", str(self.state_dir), *(extra or [])]
        self.members: list[Member] = []
        self._n = 0

    def start(self, hold: bool = False) -> Member:
        self._n += 1
        member = Member(f"{self.name}{self._n}", self.args, self.log_dir, hold=hold)
        self.members.append(member)
        return member

    def running(self) -> list[Member]:
        return [m for m in self.members if m.alive()]

    def terminate_all(self, figures: Figures) -> list[int | None]:
        """SIGTERM every running member, one after the other; exit times go to ``figures``. Only
        these members' window-state dumps are kept (earlier ones saw a database that moved on)."""
        for old in self.state_dir.glob("*.json"):
            old.unlink()
        seen = set().union(*(m.assignment(view) for m in self.members for view in ("client", "hook")))
        everything = set(range(max(seen) + 1)) if seen else set()
        codes = []
        for m in self.running():
            self._quiesce(everything, figures)  # a LeaveGroup in an open round wedges Tansu (see wait_stable)
            rc, took = m.terminate()
            figures.sigterm_exit_s.append(round(took, 2))
            codes.append(rc)
        self._quiesce(everything, figures)
        return codes

    def _quiesce(self, everything: set[int], figures: Figures) -> None:
        """Before a SIGTERM at the end: the clients split the partitions for 1 s (:meth:`wait_stable`,
        up to 60 s), then the members' takeovers are done (:meth:`_settle`). A group that does not
        get there is counted in ``figures.notes["unsettled_at_stop"]``, not failed here."""
        if not everything or not self.running():
            return
        try:
            self.wait_stable(len(everything), timeout_s=60.0)
        except AssertionError:
            figures.notes["unsettled_at_stop"] = int(figures.notes.get("unsettled_at_stop", 0)) + 1
        self._settle(everything)

    def _settle(self, everything: set[int], timeout_s: float = 30.0) -> None:
        """Give the members left the time to take the partitions over (their ``hook`` view equals
        their client's and covers ``everything``), so the next SIGTERM finds a state to dump and a
        stable group (see :meth:`wait_stable`). Gives up quietly: the verdict does not depend on it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            rest = self.running()
            hooks, clients = [m.assignment("hook") for m in rest], [m.assignment() for m in rest]
            if not rest or (hooks == clients and set().union(*hooks) == everything):
                return
            time.sleep(0.2)

    def wait_stable(self, partitions: int, timeout_s: float = 60.0, hold_s: float = 1.0) -> float:
        """Wait until the running (and released) members' Kafka clients split the inference partitions between them
        (each holds some, none twice, all held) and that holds for ``hold_s``; return the seconds waited.

        The cases change the membership only once the group is stable: Tansu 0.6's group coordinator
        wedges when a member dies while a JoinGroup/SyncGroup round is open (seen with plain
        kafka-python consumers too; see README.md, "Harness notes")."""
        t0 = time.monotonic()
        deadline = t0 + timeout_s
        since: float | None = None
        while True:
            views = [m.assignment() for m in self.running() if m.joined]
            held = [p for v in views for p in v]
            ok = bool(views) and all(views) and len(held) == len(set(held)) == partitions
            now = time.monotonic()
            if ok:
                since = since or now
                if now - since >= hold_s:
                    return now - t0
            else:
                since = None
            if now > deadline:
                raise AssertionError(f"group not stable after {timeout_s} s: {views}\n{self.logs()}")
            time.sleep(0.1)

    def close(self) -> None:
        for m in self.members:
            m.reap()

    def logs(self) -> str:
        """The members' stderr, for an assertion message."""
        parts = []
        for m in self.members:
            with contextlib.suppress(OSError):
                parts.append(f"--- {m.name}\n" + m.log.read_text(errors="replace")[-4000:])
        return "\n".join(parts)


# ----------------------------------------------------------------------------- topics and events


def make_topics(bootstrap: str, prefix: str, partitions: int) -> Topics:
    """The inference topic with ``partitions`` partitions; feedback, promotions and the DLQs with one."""
    topics = Topics.with_prefix(prefix)
    ensure_topics(bootstrap, [topics.inference], partitions=partitions)
    ensure_topics(bootstrap, [t for t in topics.all() if t != topics.inference], partitions=1)
    return topics


def _producer(bootstrap: str) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=256 * 1024,
                         max_request_size=4 * 1024 * 1024)


def _send(producer: KafkaProducer, topic: str, partitions: int, start: int, stop: int) -> list[Any]:
    """Events ``start..stop-1`` stamped with the wall clock (so they fall in the members' windows),
    and on the feedback topic the labels of every third event, ``LABEL_LAG`` events late."""
    futures = []
    feedback = topic.replace("-inference", "-feedback")
    now = time.time()
    for i in range(start, stop):
        model = f"m{i % MODELS}"
        futures.append(producer.send(topic, key=model.encode(), value=raw(inference_dict(i, model=model, served=now)),
                                     partition=i % partitions))
        j = i - LABEL_LAG
        if j >= 0 and j % 3 == 0:
            futures.append(producer.send(feedback, key=None, value=raw(feedback_dict(j, now, correct=j % 5 != 0))))
    return futures


def produce_range(bootstrap: str, topic: str, partitions: int, start: int, stop: int) -> None:
    """Events ``start..stop-1`` (request ids ``r<i>``), round-robin over the partitions; all acknowledged."""
    producer = _producer(bootstrap)
    try:
        for lo in range(start, stop, 20_000):
            futures = _send(producer, topic, partitions, lo, min(stop, lo + 20_000))
            producer.flush(timeout=120)
            for f in futures:
                f.get(timeout=60)
    finally:
        producer.close(timeout=5)


class Traffic:
    """Produces events ``start, start+1, ...`` at ``rate`` per second on a thread until ``total``
    are acknowledged or ``stop()``; ``produced`` counts the acknowledged ones (all < produced)."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, rate: int, total: int, start: int = 0) -> None:
        self.bootstrap, self.topic, self.partitions = bootstrap, topic, partitions
        self.rate, self.total, self.start = rate, total, start
        self.produced = start
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fault-traffic", daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            producer = _producer(self.bootstrap)
            try:
                step = max(1, self.rate // 10)
                next_at = time.monotonic()
                i = self.start
                while i < self.start + self.total and not self._stop.is_set():
                    hi = min(self.start + self.total, i + step)
                    futures = _send(producer, self.topic, self.partitions, i, hi)
                    producer.flush(timeout=60)
                    for f in futures:
                        f.get(timeout=60)
                    i = self.produced = hi
                    next_at += 0.1
                    self._stop.wait(max(0.0, next_at - time.monotonic()))
            finally:
                producer.close(timeout=5)
        except BaseException as e:
            self.error = e

    def done(self) -> bool:
        return not self._thread.is_alive()

    def wait(self, timeout_s: float) -> None:
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "traffic did not finish in time"
        assert self.error is None, f"producing failed: {self.error!r}"

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


# ----------------------------------------------------------------------------- database


class Rows:
    """Counts in ``inference_log`` of one test database (its own small engine)."""

    def __init__(self, url: str) -> None:
        upgrade(url)  # what `slicewatch db upgrade` does before the members start
        seed_profiles(url)
        self.engine = make_engine(url, statement_timeout_s=60)

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM inference_log")).scalar_one())

    def per_partition(self) -> dict[int, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT partition, count(*) FROM inference_log GROUP BY partition"))
            return {int(p): int(n) for p, n in rows}

    def wait_count(self, at_least: int, timeout_s: float, fleet: Fleet | None = None) -> int:
        deadline = time.monotonic() + timeout_s
        n = self.count()
        while n < at_least:
            if time.monotonic() > deadline:
                logs = fleet.logs() if fleet is not None else ""
                raise AssertionError(f"timed out after {timeout_s} s: {n} rows, waiting for {at_least}\n{logs}")
            time.sleep(0.2)
            n = self.count()
        return n

    def verify(self, produced: int, figures: Figures) -> None:
        """Fill ``figures`` with rows / lost / duplicated / unexpected for request ids ``r0..r<produced-1>``.

        ``duplicated`` is rows minus distinct request ids (the primary key makes it 0 unless the
        schema changes); ``lost`` is produced ids without a row; ``unexpected`` is rows of ids never
        produced."""
        with self.engine.connect() as conn:
            total, distinct = conn.execute(
                text("SELECT count(*), count(DISTINCT request_id) FROM inference_log")).one()
            ids = {r[0] for r in conn.execute(text("SELECT request_id FROM inference_log"))}
        expected = {request_id(i) for i in range(produced)}
        figures.produced = produced
        figures.rows = int(total)
        figures.duplicated = int(total) - int(distinct)
        figures.lost = len(expected - ids)
        figures.unexpected = len(ids - expected)

    def dispose(self) -> None:
        self.engine.dispose()


def assert_exactly_once(figures: Figures, fleet: Fleet | None = None) -> None:
    logs = "" if fleet is None else "\n" + fleet.logs()
    assert (figures.lost, figures.duplicated, figures.unexpected) == (0, 0, 0), (
        f"{figures.lost} lost, {figures.duplicated} duplicated, {figures.unexpected} unexpected "
        f"of {figures.produced} produced ({figures.rows} rows){logs}")
    assert figures.rows == figures.produced


# ----------------------------------------------------------------------------- offsets


def end_offsets(bootstrap: str, tps: list[TopicPartition], timeout_s: float = 15.0) -> dict[TopicPartition, int]:
    """The high watermark of each partition, as a Fetch response reports it.

    Not ListOffsets (``KafkaConsumer.end_offsets``): Tansu answers LATEST with the last record
    batch's base offset + 1, e.g. 1001 for 1007 records written as batches of 1000 and 7."""
    reader = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                           max_partition_fetch_bytes=1024)
    try:
        reader.assign(tps)
        reader.seek_to_end()
        deadline = time.monotonic() + timeout_s
        while any(reader.highwater(tp) is None for tp in tps):
            assert time.monotonic() < deadline, "no high watermark from the broker"
            reader.poll(timeout_ms=200)
        return {tp: int(reader.highwater(tp)) for tp in tps}
    finally:
        reader.close()


def offset_gaps(bootstrap: str, group: str, topics: Topics, partitions: int) -> dict[str, tuple[int, int]]:
    """``{"topic/partition": (committed, end)}`` for every partition where they differ (no commit = 0).
    Committed offsets come from the admin client's OffsetFetch for the group (kafka-python 3 names
    ``list_consumer_group_offsets`` ``list_group_offsets``), end offsets from :func:`end_offsets`."""
    tps = [TopicPartition(topics.inference, p) for p in range(partitions)]
    tps += [TopicPartition(t, 0) for t in (topics.feedback, topics.promotions)]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        committed = admin.list_group_offsets({group: tps})[group]
    finally:
        admin.close()
    ends = end_offsets(bootstrap, tps)
    gaps = {}
    for tp in tps:
        meta = committed.get(tp)
        done = meta.offset if meta is not None and meta.offset >= 0 else 0
        if done != ends[tp]:
            gaps[f"{tp.topic}/{tp.partition}"] = (done, ends[tp])
    return gaps


def wait_offsets_at_end(bootstrap: str, group: str, topics: Topics, partitions: int, timeout_s: float,
                        fleet: Fleet | None = None) -> None:
    """The group's committed offsets reach the end offsets (commits follow the database commit)."""
    deadline = time.monotonic() + timeout_s
    while True:
        gaps = offset_gaps(bootstrap, group, topics, partitions)
        if not gaps:
            return
        if time.monotonic() > deadline:
            logs = "" if fleet is None else "\n" + fleet.logs()
            raise AssertionError(f"committed offsets short of the end after {timeout_s} s: {gaps}{logs}")
        time.sleep(0.5)


# ----------------------------------------------------------------------------- PostgreSQL processes


def postgres_pids(data_dir: Path) -> list[int]:
    """The postmaster (first line of ``postmaster.pid``) and its children (backends, bg workers)."""
    postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may contain spaces
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == postmaster:
                children.append(int(stat.parent.name))
    return [postmaster, *children]


def signal_all(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


@contextlib.contextmanager
def hung_postgres(data_dir: Path) -> Iterator[list[int]]:
    """SIGSTOP the postmaster first (no new backends), then every child; SIGCONT all on exit."""
    postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    signal_all([postmaster], signal.SIGSTOP)
    pids = postgres_pids(data_dir)
    signal_all(pids, signal.SIGSTOP)
    try:
        yield pids
    finally:
        signal_all(list(reversed(pids)), signal.SIGCONT)
        # As root the postmaster runs under `runuser`, which stops itself when its child stops (job
        # control) and would stay stopped: PostgresServer.stop() would then wait 30 s for it.
        with contextlib.suppress(OSError, ValueError, IndexError):
            parent = int(Path(f"/proc/{postmaster}/stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent not in (os.getpid(), 1):
                signal_all([parent], signal.SIGCONT)


def until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.1)


def rng_for(case: str, seed: int) -> random.Random:
    return random.Random(f"{case}:{seed}")


# ----------------------------------------------------------------------------- window state


def drain_timeout(n: int) -> float:
    """Generous: ~8k events/s per member on a quiet machine; the CI machine is shared."""
    return max(90.0, n / 1500)


def finish_case(fleet: Fleet, rows: Rows, n: int, topics: Topics, partitions: int, figures: Figures,
                before_stop: Callable[[], None] | None = None) -> list[int | None]:
    """The end every case shares: all ``n`` rows stored and every offset committed at the end,
    ``before_stop`` (a last look at the running members), a clean stop of every member, then the
    exactly-once row check and the window-state verdict. Returns the members' exit codes."""
    rows.wait_count(n, drain_timeout(n), fleet)
    wait_offsets_at_end(fleet.bootstrap, fleet.group, topics, partitions, 30, fleet)
    if before_stop is not None:
        before_stop()
    codes = fleet.terminate_all(figures)
    rows.verify(n, figures)
    check_windows(fleet.url, fleet, figures)
    return codes


def check_windows(url: str, fleet: Fleet, figures: Figures) -> None:
    """:func:`assert_windows_match` on the dumps of the members stopped last; at least one."""
    checked = assert_windows_match(url, fleet.state_dir)
    figures.notes["window_states_checked"] = checked
    assert checked >= 1, f"no member left a window-state dump\n{fleet.logs()}"


def assert_windows_match(url: str, state_dir: Path) -> int:
    """Each window-state dump a member wrote at its clean exit (``runner --state-dir``) equals a
    recompute from ``inference_log`` of its partitions at its clock, counter for counter, and its
    event counts equal SQL's. Returns how many dumps were checked."""
    dumps = sorted(state_dir.glob("*.json"))
    db = make_engine(url, statement_timeout_s=60)
    checked = 0
    try:
        profiles = profile_store.latest_profiles(db)
        repo = Repository(db)
        for path in dumps:
            dump = json.loads(path.read_text())
            now, partitions = float(dump["now"]), list(dump["partitions"])
            settings = monitor_settings("127.0.0.1:1", "x", url, "x")
            from monitor.app import build_drift

            engine = build_drift(settings)
            for m, p in profiles.items():
                engine.set_reference(m, p)
            s = settings.stats
            since = window_bounds(now, s.bucket_seconds, s.window_buckets)[0]
            models = repo.window_models(partitions, since, now + 1)
            for chunk in repo.iter_window_rows(models, partitions, since, now + 1):
                engine.replay(chunk, now)
            assert sorted(dump["models"]) == models, f"{path.name}: models {sorted(dump['models'])} != {models}"
            events = 0
            for m, held in dump["models"].items():
                t = engine.window_totals(m, now)
                assert t is not None, f"{path.name}: {m} has no window in the recompute"
                for part in ("hist", "sketch", "scalars"):
                    want = getattr(t, part).tolist()
                    assert held[part] == want, f"{path.name}: {m} {part} differs from the recompute"
                events += held["scalars"][0][0]
            with db.connect() as conn:
                sql = conn.execute(text(
                    "SELECT count(*) FROM inference_log WHERE served_at >= to_timestamp(:s)"
                    " AND served_at < to_timestamp(:u) AND partition = ANY(:p)"
                ), {"s": since, "u": now + 1, "p": partitions}).scalar_one()
            assert events == sql, f"{path.name}: {events} events in the window state, {sql} rows in SQL"
            checked += 1
    finally:
        db.dispose()
    return checked
