"""What the benchmarks share about the servers they start: a fresh migrated database on the
embedded PostgreSQL, and the process trees of PostgreSQL and the broker (pinned to cores, CPU time).

Linux only (``/proc``, ``sched_setaffinity``), as the benchmarks are.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from pathlib import Path

import psycopg

from monitor.embedded.postgres import PostgresServer
from monitor.store.engine import make_engine
from monitor.store.migrate import upgrade
from monitor.store.partitions import days_around, ensure_partitions

_TICK = os.sysconf("SC_CLK_TCK")


def fresh_database(pg: PostgresServer, served_from: float, days: int = 1, prefix: str = "bench") -> str:
    """A new database on ``pg`` at the monitor's schema, with day partitions from ``served_from``'s
    day on (as live traffic's day has one); returns its SQLAlchemy URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(host="127.0.0.1", port=pg.port, user="slicewatch", dbname="postgres",
                         autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://slicewatch@127.0.0.1:{pg.port}/{name}"
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        ensure_partitions(conn, days_around(served_from, 0, days))
    engine.dispose()
    return url


def _stat(pid: int) -> list[str]:
    # The command name (field 2) may hold spaces: split after its closing parenthesis.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def process_tree(root: int) -> list[int]:
    """``root`` and every live process descended from it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                children.setdefault(int(_stat(int(entry.name))[1]), []).append(int(entry.name))
            except (OSError, IndexError):
                continue  # exited while listed
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def pin(root: int, cpus: Iterable[int]) -> None:
    """Pin every thread of ``root``'s tree to ``cpus``; processes it forks later inherit it."""
    cores = set(cpus)
    for pid in process_tree(root):
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                os.sched_setaffinity(int(task.name), cores)
            except OSError:
                continue  # exited meanwhile


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU of ``root``'s tree: the live processes and the children they reaped (an
    exited PostgreSQL backend's time moves to the postmaster's ``cutime``)."""
    total = 0
    for pid in process_tree(root):
        try:
            fields = _stat(pid)
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return total / _TICK
