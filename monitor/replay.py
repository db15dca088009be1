"""``slicewatch replay``'s source: recorded events through the live statistics and alerting code.

Events (JSONL or Parquet, each file in the event contract) are decoded with the live decoder, put
in event-time order (promotions, then inferences, then feedback at equal times) and written in
chunks of one evaluation interval to the store of a monitor that :func:`monitor.app.replay` wires
on a throw-away SQLite file (no broker, no database server), so the label join, the statistics and
the alert lifecycle are the live ones. The clock is event time; evaluations happen at the same
aligned instants as in a live run. The :class:`Recorder` writes every drift event to a JSON line
(the drift-event schema) and keeps the series the plots need.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import msgspec
import polars as pl
from rich.console import Console
from rich.progress import Progress

from monitor.alerts.drift_event import incidents_of
from monitor.alerts.rules import Rule
from monitor.events import EventKind, FeedbackEvent, InferenceEvent, PromotionEvent
from monitor.ingest.decoder import DecodeFailure, decode
from monitor.ingest.writer import BatchStore
from monitor.pipeline import Pipeline, fired_epoch
from monitor.snapshot import Snapshot
from monitor.stats.errors import StatsError
from monitor.tables import narrow_table

_KIND_ORDER = {"promotion": 0, "inference": 1, "feedback": 2}


class ReplayError(StatsError):
    """A replay input could not be read."""


def _raw_lines(path: Path) -> Iterator[bytes]:
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            encode = msgspec.json.Encoder().encode
            for row in pl.read_parquet(path).to_dicts():
                yield encode({k: v for k, v in row.items() if v is not None})
            return
        with path.open("rb") as f:
            for line in f:
                if line.strip():
                    yield line.rstrip(b"\r\n")
    except (OSError, pl.exceptions.PolarsError) as e:
        raise ReplayError(f"cannot read {path.name} ({type(e).__name__})") from e


@dataclass
class ReplaySummary:
    events_in: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    rejected: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    rejected_by_file: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per input file (its path as given and the kind it was read as): rejected events by ``error_class``."""
    read_by_file: dict[str, int] = field(default_factory=dict)
    """Per input file: events read (accepted + rejected)."""
    drift_events: list[dict[str, Any]] = field(default_factory=list)
    evaluations: int = 0
    plots: list[Path] = field(default_factory=list)

    def problems(self, max_rejected_share: float) -> list[str]:
        """Why this replay should not count as a success: nothing replayed, or a file with more than
        ``max_rejected_share`` of its events rejected (named, with its most common reason: e.g. an
        inference file passed as ``--promotions``).

        >>> s = ReplaySummary(read_by_file={"a.jsonl": 10}, rejected_by_file={"a.jsonl": {"missing_field": 10}})
        >>> s.problems(0.1)
        ['nothing was replayed', 'a.jsonl: 10 of 10 events rejected (mostly missing_field)']
        """
        out = []
        if sum(self.events_in.values()) == 0:
            out.append("nothing was replayed")
        for path, read in self.read_by_file.items():
            rejected = self.rejected_by_file.get(path, {})
            n = sum(rejected.values())
            if read and n / read > max_rejected_share:
                top = max(rejected, key=lambda k: (rejected[k], k))
                out.append(f"{path}: {n} of {read} events rejected (mostly {top})")
        return out

    def as_dict(self) -> dict[str, Any]:
        """What ``replay --format json`` prints: counts and the incidents, no payload values."""
        return {
            "events_in": dict(self.events_in), "rejected": dict(self.rejected),
            "rejected_by_file": self.rejected_by_file, "evaluations": self.evaluations,
            "drift_events": len(self.drift_events), "incidents": incidents_of(self.drift_events),
            "plots": [str(p) for p in self.plots],
        }

    def print(self, console: Console | None = None) -> None:
        console = console or Console()
        console.print(
            f"replayed {dict(self.events_in)} events, {self.evaluations} evaluations, "
            f"{len(self.drift_events)} drift events"
            + (f"; rejected {dict(self.rejected)}" if self.rejected else "")
        )
        incidents = incidents_of(self.drift_events)
        console.print(f"{len(incidents)} incidents")
        cols = ["opened", "state", "model_id", "signal", "slice", "statistic", "severity", "action",
                "rollback_target", "members", "events"]
        rows = [[str(i.get("fired_at")), i["state"], i["model_id"], i["signal"], i["slice"],
                 f"{i['feature']}/{i['statistic']}", i["severity"], i["action"], str(i.get("rollback_target") or ""),
                 str(len(i["members"])), str(i["events"])] for i in incidents]
        table = narrow_table("incidents (each as of its latest drift event)", cols,
                             keys={"model_id", "rollback_target"}, rows=rows)
        console.print(table)
        for p in self.plots:
            console.print(f"plot: {p}")


def load_events(
    inference: Path, feedback: Path | None, promotions: Path | None, max_bytes: int, summary: ReplaySummary
) -> list[tuple[float, int, Any]]:
    """Decode every file with the live decoder; returns ``(time, kind order, event)`` sorted."""
    timeline: list[tuple[float, int, Any]] = []
    for kind, path in (("inference", inference), ("feedback", feedback), ("promotion", promotions)):
        if path is None:
            continue
        name = f"{path} (read as {kind} events)"  # one file may be passed twice
        summary.read_by_file.setdefault(name, 0)
        for raw in _raw_lines(path):
            summary.read_by_file[name] += 1
            try:
                event = decode(cast(EventKind, kind), raw, max_bytes)
            except DecodeFailure as e:
                summary.rejected[e.error_class] += 1
                per_file = summary.rejected_by_file.setdefault(name, {})
                per_file[e.error_class] = per_file.get(e.error_class, 0) + 1
                continue
            summary.events_in[kind] += 1
            if isinstance(event, InferenceEvent):
                ts = event.served_at.timestamp()
            elif isinstance(event, FeedbackEvent):
                ts = event.observed_at.timestamp()
            else:
                assert isinstance(event, PromotionEvent)
                ts = event.promoted_at.timestamp()
            timeline.append((ts, _KIND_ORDER[kind], event))
    timeline.sort(key=lambda item: (item[0], item[1]))
    return timeline


class Recorder:
    """The replay's sinks: each drift event as a JSON line to ``sink`` and into ``summary``; with
    ``keep_series``, the sufficient values of every statistic a rule names, for :meth:`plot`."""

    def __init__(self, sink: IO[str], summary: ReplaySummary, rules: Mapping[str, Rule], *, keep_series: bool) -> None:
        self.sink, self.summary, self.rules, self.keep_series = sink, summary, rules, keep_series
        self.series: dict[tuple[str, ...], list[tuple[float, float]]] = defaultdict(list)

    def on_drift_event(self, event: dict[str, Any]) -> None:
        self.summary.drift_events.append(event)
        self.sink.write(json.dumps(event, sort_keys=True) + "\n")

    def on_snapshot(self, snap: Snapshot) -> None:
        if not self.keep_series:
            return
        for v in snap.values:
            if f"{v.signal}.{v.statistic}" in self.rules and v.sufficient:
                self.series[(v.model_id, v.slice, v.signal, v.feature, v.statistic)].append(
                    (snap.evaluated_at, v.value)
                )

    def plot(self, plot_dir: Path) -> list[Path]:
        return _plot(self.series, self.summary.drift_events, self.rules, plot_dir)


def run_replay(
    timeline: list[tuple[float, int, Any]],
    store: BatchStore,
    pipeline: Pipeline,
    summary: ReplaySummary,
    *,
    progress: bool = False,
) -> None:
    """Write the timeline in chunks of one evaluation interval, each followed by the evaluation due."""
    every = pipeline.evaluate_every_s
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("replaying", total=len(timeline))
        i = 0
        while i < len(timeline):
            interval = timeline[i][0] // every
            j = i
            while j < len(timeline) and timeline[j][0] // every == interval:
                j += 1
            chunk = [item[2] for item in timeline[i:j]]
            end = (interval + 1) * every
            outcome = store.write(
                [(e, None) for e in chunk if isinstance(e, InferenceEvent)],
                [e for e in chunk if isinstance(e, FeedbackEvent)],
                [e for e in chunk if isinstance(e, PromotionEvent)],
                [],
                end,
            )
            pipeline.on_written(outcome.result, end)
            pipeline.tick(end)
            bar.advance(task, j - i)
            i = j
    summary.evaluations = pipeline.stats.evaluations


def _plot(
    series: dict[tuple[str, ...], list[tuple[float, float]]],
    events: list[dict[str, Any]],
    rules: Mapping[str, Rule],
    plot_dir: Path,
) -> list[Path]:
    """One PNG per alerted signal: the statistic over time against its warning/critical thresholds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plot_dir.mkdir(parents=True, exist_ok=True)
    alerted = {(e["model_id"], e["slice"], e["feature"], e["statistic"]) for e in events}
    written: list[Path] = []
    for key, points in sorted(series.items()):
        model_id, slice_, signal, feature, statistic = key
        if (model_id, slice_, feature, statistic) not in alerted or not points:
            continue
        rule = rules[f"{signal}.{statistic}"]
        xs = [(t - points[0][0]) / 60 for t, _ in points]
        fig, ax = plt.subplots(figsize=(9, 3.5))
        ax.plot(xs, [v for _, v in points], label=statistic)
        ax.axhline(rule.warning, color="orange", linestyle="--", label="warning")
        ax.axhline(rule.critical, color="red", linestyle="--", label="critical")
        for e in events:
            if (e["model_id"], e["slice"], e["feature"], e["statistic"]) == (model_id, slice_, feature, statistic):
                ax.axvline((fired_epoch(e) - points[0][0]) / 60, color="grey", alpha=0.5)
        ax.set_title(f"{model_id} {slice_} {signal}/{feature}/{statistic}")
        ax.set_xlabel("minutes")
        ax.legend(loc="upper left")
        name = "_".join(key).replace("/", "_").replace("=", "-").replace("@", "_").replace(":", "_")
        path = plot_dir / f"{name}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written
