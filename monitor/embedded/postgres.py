"""A throw-away PostgreSQL cluster (Debian's ``initdb``/``postgres``) in a temp dir on 127.0.0.1.

Used by the tests and the benchmarks. PostgreSQL refuses to run as root, so as root the cluster is
created and run as the ``postgres`` system user (created by Debian's package) via ``runuser``.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from monitor.embedded.ports import free_port, wait_for_port


def pg_bin(name: str) -> str:
    env = os.environ.get("SLICEWATCH_PG_BINDIR")
    if env:
        return str(Path(env) / name)
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    if candidates:
        return candidates[0]
    found = shutil.which(name)
    if found:
        return found
    raise FileNotFoundError(f"{name} not found: apt-get install -y postgresql")


class PostgresServer:
    """initdb + postgres on a free loopback port; ``stop()``/``start()`` simulate an outage."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="slicewatch-pg-"))
        self.data = self.root / "data"
        self._as_root = os.geteuid() == 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._initialised = False

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://slicewatch@127.0.0.1:{self.port}/slicewatch"

    def _cmd(self, args: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *args] if self._as_root else args

    def _init(self) -> None:
        if self._as_root:
            shutil.chown(self.root, "postgres", "postgres")
        subprocess.run(
            self._cmd(
                [pg_bin("initdb"), "-D", str(self.data), "-U", "slicewatch", "-A", "trust", "-E", "UTF8",
                 "--no-sync"]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._initialised = True

    def start(self) -> PostgresServer:
        if not self._initialised:
            self._init()
        log = open(self.root / "postgres.log", "ab")  # noqa: SIM115
        self._proc = subprocess.Popen(
            self._cmd(
                [pg_bin("postgres"), "-D", str(self.data), "-h", "127.0.0.1", "-p", str(self.port),
                 "-k", str(self.root), "-c", "fsync=off", "-c", "full_page_writes=off",
                 "-c", "max_connections=200"]
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_port(self.port, timeout_s=60)
        self._ensure_database()
        return self

    def _ensure_database(self) -> None:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(
                    host="127.0.0.1", port=self.port, user="slicewatch", dbname="postgres", autocommit=True
                ) as conn:
                    exists = conn.execute("SELECT 1 FROM pg_database WHERE datname='slicewatch'").fetchone()
                    if not exists:
                        conn.execute("CREATE DATABASE slicewatch")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        if self._proc is None:
            return
        subprocess.run(
            self._cmd([pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]),
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.destroy()
