"""HTTP exposition of an injected registry (default 127.0.0.1:9731, the port the README documents),
with the probes beside it: ``/metrics`` (client_python's WSGI app: content negotiation, gzip,
``name[]`` filters), ``/healthz`` (200 while the process serves), ``/readyz`` (200, or 503 with one
problem per line, from :class:`~monitor.metrics.health.Health`); every other path is 404.

Examples
--------
>>> import urllib.request
>>> from prometheus_client import CollectorRegistry
>>> server = MetricsServer(CollectorRegistry(), host="127.0.0.1", port=0).start()
>>> urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz").read()
b'ok\\n'
>>> try:
...     urllib.request.urlopen(f"http://127.0.0.1:{server.port}/nope")
... except urllib.error.HTTPError as e:
...     print(e.code)
404
>>> server.close()
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from monitor.errors import SlicewatchError
from monitor.metrics.health import Health

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9731


class MetricsError(SlicewatchError):
    """The metrics endpoint could not be started (port in use, address not available)."""


class _QuietHandler(WSGIRequestHandler):
    """No access log on stderr (probes every few seconds would flood it)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


Environ = dict[str, Any]
StartResponse = Callable[..., Any]


def _text(start: StartResponse, status: str, body: str) -> Iterable[bytes]:
    data = body.encode()
    start(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data)))])
    return [data]


def probe_app(registry: CollectorRegistry, health: Health) -> Callable[[Environ, StartResponse], Iterable[bytes]]:
    """The WSGI app: ``/metrics``, ``/healthz``, ``/readyz``; 404 elsewhere."""
    metrics = make_wsgi_app(registry)

    def app(environ: Environ, start: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if path == "/metrics":
            return metrics(environ, start)
        if path == "/healthz":
            return _text(start, "200 OK", "ok\n")
        if path == "/readyz":
            ready, problems = health.ready()
            if ready:
                return _text(start, "200 OK", "ready\n")
            return _text(start, "503 Service Unavailable", "".join(f"{p}\n" for p in problems))
        return _text(start, "404 Not Found", "not found: the paths are /metrics, /healthz and /readyz\n")

    return app


class MetricsServer:
    """Serves ``/metrics`` of ``registry`` and the probes in a daemon thread; ``port=0`` picks a free port."""

    def __init__(
        self,
        registry: CollectorRegistry,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        health: Health | None = None,
    ) -> None:
        self.registry = registry
        self.health = health or Health([])
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
            self._server = make_server(self.host, self._requested_port, probe_app(self.registry, self.health),
                                       ThreadingWSGIServer, handler_class=_QuietHandler)
        except OSError as e:
            raise MetricsError(
                f"cannot serve metrics on {self.host}:{self._requested_port} ({e.strerror})"
            ) from e
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-server", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
