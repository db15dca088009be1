"""HTTP exposition of an injected registry (default 127.0.0.1:9731, the port the README documents).

Examples
--------
>>> from prometheus_client import CollectorRegistry
>>> server = MetricsServer(CollectorRegistry(), host="127.0.0.1", port=0).start()
>>> server.port > 0
True
>>> server.close()
"""

from __future__ import annotations

import threading
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

from monitor.errors import SlicewatchError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9731


class MetricsError(SlicewatchError):
    """The metrics endpoint could not be started (port in use, address not available)."""


class MetricsServer:
    """Serves ``/metrics`` of ``registry`` in a daemon thread; ``port=0`` picks a free port."""

    def __init__(
        self, registry: CollectorRegistry, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT
    ) -> None:
        self.registry = registry
        self.host = host
        self._requested_port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_port) if self._server is not None else self._requested_port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def start(self) -> MetricsServer:
        try:
            self._server, self._thread = start_http_server(
                self._requested_port, addr=self.host, registry=self.registry
            )
        except OSError as e:
            raise MetricsError(
                f"cannot serve metrics on {self.host}:{self._requested_port} ({e.strerror})"
            ) from e
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
