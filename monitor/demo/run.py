"""``slicewatch demo``: the whole monitor on embedded defaults, with scripted incidents.

Starts the Tansu broker (unless ``bootstrap_servers`` is given), a SQLite store in ``workdir``
(unless ``database_url``), the monitor with ``/metrics``, and a producer that replays the traffic
generator's event time ``speedup`` times faster than the wall clock. The monitor's clock is event
time, so the one-hour window and the promotion watch window mean what they mean in production.
At the end it prints, per scripted incident, when it began, when it was detected, by which signal
and with which action.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from kafka import KafkaProducer
from rich.console import Console
from rich.live import Live

from monitor.alerts.drift_event import incidents_of
from monitor.demo.traffic import Incident, TrafficGenerator
from monitor.demo.view import render
from monitor.embedded.ports import free_port
from monitor.embedded.tansu import TansuBroker
from monitor.metrics.server import DEFAULT_PORT as DEFAULT_METRICS_PORT
from monitor.pipeline import EventClock, fired_epoch
from monitor.tables import narrow_table

_encode = msgspec.json.Encoder().encode


@dataclass
class DemoOptions:
    bootstrap_servers: str | None = None
    database_url: str | None = None
    minutes: float = 120.0
    speedup: float = 60.0
    rate: float = 24.0
    workdir: Path = Path("slicewatch-demo")
    live: bool = True
    seed: int = 7
    metrics_port: int | None = DEFAULT_METRICS_PORT
    """The documented port by default; a busy one falls back to a free port (said on the console);
    None: a free port (tests)."""
    drain_s: float = 20.0
    config_file: Path | None = None
    """A YAML file merged over the demo's configuration (its broker, database and topics stay the demo's)."""


@dataclass
class Detection:
    incident: Incident
    event: dict[str, Any] | None

    @property
    def detected(self) -> bool:
        return self.event is not None


@dataclass
class DemoResult:
    detections: list[Detection] = field(default_factory=list)
    drift_events: list[dict[str, Any]] = field(default_factory=list)
    produced: int = 0
    metrics_url: str = ""
    start: float = 0.0

    @property
    def all_detected(self) -> bool:
        return all(d.detected for d in self.detections)


def demo_traffic(options: DemoOptions, start: float) -> TrafficGenerator:
    """The demo's traffic: the incidents at 30%, 40% and 55% of the run."""
    return TrafficGenerator(
        seed=options.seed, start=start, events_per_s=options.rate,
        promote_at_s=options.minutes * 60 * 0.4, tail_drift_at_s=options.minutes * 60 * 0.3,
        template_change_at_s=options.minutes * 60 * 0.55,
    )


@dataclass(frozen=True)
class Topics:
    inference: str
    feedback: str
    promotions: str


DEMO_TOPICS = Topics("inference-events", "inference-feedback", "model-promotions")


def demo_config(bootstrap: str, database_url: str, metrics_port: int) -> dict[str, Any]:
    """The demo's configuration tree (as in a YAML file): what an on-call team would declare for
    these three models."""
    return {
            "kafka": {"bootstrap_servers": bootstrap, "group_id": "slicewatch-demo",
                      "topics": {"inference": DEMO_TOPICS.inference, "feedback": DEMO_TOPICS.feedback,
                                 "promotions": DEMO_TOPICS.promotions},
                      "session_timeout_ms": 6000, "heartbeat_interval_ms": 1000, "max_poll_records": 5000,
                      "poll_timeout_ms": 200},
            "database": {"url": database_url},
            "stats": {
                "bucket_seconds": 60,
                "window_buckets": 30,
                "evaluate_every_s": 30,
                "allowed_lateness_s": 1200,
                "auto_reference_events": 4000,
                "min_samples": 300,
                "protected_slices": {"domain": ["regulatory"], "language": ["es", "ja"]},
                "quality_bars": {"*": {"all": {"accuracy": 0.86}, "domain=regulatory": {"accuracy": 0.875},
                                       "language=es": {"accuracy": 0.86}, "language=ja": {"accuracy": 0.86}}},
            },
            "alerts": {
                "promotion_watch_s": 3600,
                "lineage_lookback_s": 1800,
                "rules": {
                    # Accuracy half a point or more below the release bar, significantly, warns.
                    "quality.accuracy_gap": {"warning": 0.005, "critical": 0.03, "min_samples": 300,
                                             "hold_evaluations": 2, "clear_evaluations": 6},
                    "quality.adwin_drift": {"warning": 0.5, "critical": 0.5, "min_samples": 300,
                                            "hold_evaluations": 2},
                    "input.psi": {"warning": 0.2, "critical": 0.3, "min_samples": 300},
                    "input.p99_shift": {"warning": 0.5, "critical": 1.0, "min_samples": 300},
                    "output.psi": {"warning": 0.15, "critical": 0.3, "min_samples": 300},
                    "output.mean_confidence_delta": {"warning": 0.05, "critical": 0.1, "min_samples": 300},
                },
            },
            "metrics": {"host": "127.0.0.1", "port": metrics_port},
    }


def _metrics_port(wanted: int | None, console: Console) -> int:
    if wanted is None:
        return free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", wanted))
            return wanted
        except OSError:
            port = free_port()
            console.print(f"port {wanted} is in use: metrics on port {port} instead (--metrics-port to choose)")
            return port


def match(incident: Incident, events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first firing drift event at or after the incident's onset that detects it as expected:
    the right model, signal and action (and, for the tail drift, the ``tokens_in`` feature)."""
    for e in events:
        if e["state"] != "firing" or e["model_id"] != incident.model_id:
            continue
        if fired_epoch(e) < incident.starts_at or e["signal"] != incident.signal:
            continue
        if incident.action not in set(e.get("actions") or [e["action"]]):
            continue
        if incident.signal == "input" and e["feature"] != "tokens_in":
            continue
        return e
    return None


def _producer_loop(
    producer: KafkaProducer, gen: TrafficGenerator, topics: Topics, end: float, speedup: float,
    stop: threading.Event, counter: list[int],
) -> None:
    step_s = 10.0
    wall0 = time.monotonic()
    event0 = gen.now
    while gen.now < end and not stop.is_set():
        step = gen.step(step_s)
        for p in step.promotions:
            producer.send(topics.promotions, key=p["model_id"].encode(), value=_encode(p))
        for e in step.inferences:
            producer.send(topics.inference, key=e["model_id"].encode(), value=_encode(e))
        for f in step.feedback:
            producer.send(topics.feedback, key=f["request_id"].encode(), value=_encode(f))
        counter[0] += len(step.inferences) + len(step.feedback) + len(step.promotions)
        producer.flush()
        ahead = (gen.now - event0) / speedup - (time.monotonic() - wall0)
        if ahead > 0:
            stop.wait(ahead)


def run_demo(options: DemoOptions, console: Console | None = None) -> DemoResult:
    from monitor.app import Sinks, config_differences, demo_config_with_file, demo_monitor

    console = console or Console(width=None if options.live else 160)
    broker: TansuBroker | None = None
    if options.bootstrap_servers is None:
        broker = TansuBroker().start()
        bootstrap = broker.bootstrap_servers
        console.print(f"started the embedded Tansu broker on {bootstrap}")
    else:
        bootstrap = options.bootstrap_servers
    if options.database_url is None:
        shutil.rmtree(options.workdir, ignore_errors=True)
        options.workdir.mkdir(parents=True, exist_ok=True)
        database_url = f"sqlite:///{options.workdir.resolve() / 'slicewatch-demo.db'}"
    else:
        database_url = options.database_url
    port = _metrics_port(options.metrics_port, console)
    config = demo_config(bootstrap, database_url, port)
    if options.config_file is not None:
        config = demo_config_with_file(config, options.config_file)
    console.print("configuration (where it differs from the defaults):\n" + "\n".join(
        f"  {line}" for line in config_differences(config, skip=("database.", "kafka.bootstrap", "kafka.topics"))))
    result = DemoResult(metrics_url=f"http://127.0.0.1:{port}/metrics")
    events_lock = threading.Lock()

    def on_drift_event(event: dict[str, Any]) -> None:
        with events_lock:
            result.drift_events.append(event)
        if not options.live:
            causes = ", ".join(f"{c['field']} {c['from']}->{c['to']}" for c in event["suspected_causes"])
            kind = event.get("kind") or event["state"]
            members = f" ({len(event['members'])} alerts)" if event.get("members") else ""
            console.print(
                f"[bold]{kind}[/]{members} {event['model_id']} {event['signal']} {event['slice']} "
                f"{event['feature']}/{event['statistic']}={event['value']:.3f} (threshold {event['threshold']}) "
                f"action={','.join(event['actions'])}"
                + (f" rollback_target={event['rollback_target']}" if event["rollback_target"] else "")
                + (f" suspected: {causes}" if causes else "")
            )

    clock = EventClock()
    monitor = demo_monitor(config, event_clock=clock, sinks=Sinks(on_drift_event=on_drift_event))
    # event time runs `speedup` times faster than the wall: look at the clock that much more often,
    # so the live evaluations keep the configured cadence (as a replay of the same events does)
    monitor.evaluate_poll_s = min(1.0, monitor.evaluate_every_s / 4) / max(1.0, options.speedup)
    console.print(f"monitor up: database {database_url.split('///')[-1] if 'sqlite' in database_url else '(given)'}, "
                  f"metrics {result.metrics_url}")
    start = (time.time() // 60) * 60 - options.minutes * 60
    gen = demo_traffic(options, start)
    result.start = start
    clock.advance(start)
    stop = threading.Event()
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=256 * 1024)
    counter = [0]
    monitor_thread = threading.Thread(target=monitor.run, args=(stop,), name="slicewatch-monitor", daemon=True)
    monitor_thread.start()
    produce_stop = threading.Event()
    end = start + options.minutes * 60
    producer_thread = threading.Thread(
        target=_producer_loop, args=(producer, gen, DEMO_TOPICS, end, options.speedup, produce_stop, counter),
        name="slicewatch-demo-traffic", daemon=True,
    )
    producer_thread.start()
    thresholds = {name: rule.warning for name, rule in monitor.pipeline.evaluator.rules.items()}

    def frame() -> Any:
        elapsed = (clock.now - start) / 60
        header = (f"Slicewatch demo — event time +{elapsed:5.1f} of {options.minutes:.0f} min, "
                  f"{counter[0]} events produced, metrics at {result.metrics_url}")
        with events_lock:
            events = list(result.drift_events)
        return render(monitor.pipeline.last_snapshot, monitor.pipeline.evaluator.states, events, thresholds, header)

    try:
        if options.live:
            with Live(frame(), console=console, refresh_per_second=2, transient=False) as live:
                while producer_thread.is_alive():
                    time.sleep(0.5)
                    live.update(frame())
                _drain(monitor, clock, end, options.drain_s, live_update=lambda: live.update(frame()))
        else:
            last = time.monotonic()
            while producer_thread.is_alive():
                time.sleep(0.5)
                if time.monotonic() - last > 15:
                    last = time.monotonic()
                    console.print(f"event time +{(clock.now - start) / 60:.0f} min, {counter[0]} events produced")
            _drain(monitor, clock, end, options.drain_s)
    finally:
        produce_stop.set()
        producer_thread.join(timeout=10)
        stop.set()
        monitor_thread.join(timeout=15)
        with contextlib.suppress(Exception):
            producer.close(timeout=5)
        if broker is not None:
            broker.stop()
    result.produced = counter[0]
    result.detections = [Detection(i, match(i, result.drift_events)) for i in gen.incidents]
    _summary(console, result, start)
    return result


def _drain(monitor: Any, clock: EventClock, end: float, drain_s: float, live_update: Any = None) -> None:
    """Wait until the consumer has caught up with the produced traffic (bounded by ``drain_s``)."""
    deadline = time.monotonic() + drain_s
    while time.monotonic() < deadline and clock.now < end - 60:
        time.sleep(0.5)
        if live_update is not None:
            live_update()
    time.sleep(min(2.0, drain_s))


def _summary(console: Console, result: DemoResult, start: float) -> None:
    rows = []
    for d in result.detections:
        began = (d.incident.starts_at - start) / 60
        if d.event is None:
            rows.append([d.incident.name, d.incident.model_id, f"{began:.1f}", "not detected", "", "", "", "", "", ""])
            continue
        detected = (fired_epoch(d.event) - start) / 60
        causes = ", ".join(c["field"] for c in d.event["suspected_causes"])
        rows.append([
            d.incident.name, d.incident.model_id, f"{began:.1f}", f"{detected:.1f}", f"{detected - began:.1f}",
            d.event["signal"], f"{d.event['feature']}/{d.event['statistic']}", ",".join(d.event["actions"]),
            d.event["rollback_target"] or "", causes,
        ])
    table = narrow_table("scripted incidents", ["incident", "model", "began (min)", "detected (min)", "delay (min)",
                                                "signal", "statistic", "action", "rollback target",
                                                "suspected causes"],
                         keys={"model", "rollback target"}, rows=rows)
    console.print(table)
    incidents = incidents_of(result.drift_events)
    console.print(
        f"{result.produced} events produced; {len(incidents)} incidents "
        f"({sum(len(i['members']) for i in incidents)} member alerts, {len(result.drift_events)} drift events), "
        f"{sum(1 for d in result.detections if d.detected)}/{len(result.detections)} incidents detected"
    )
