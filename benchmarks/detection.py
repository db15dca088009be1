"""Detection benchmark: seeded streams with known change points, Slicewatch side by side with peers.

    .venv/bin/python -m benchmarks.detection [--scale 1] [--seeds N] [--rate 20] [--no-peers]

Each stream is one model served at ``--rate`` events/s (every event labelled), with features
``x0`` (numeric), ``c0`` (categorical), ``b0`` (boolean), ``tokens_in``, an output class with a
confidence, and ``domain`` (``regulatory`` = 5% of traffic, declared as a protected slice). The
reference is 30 minutes of history before the stream starts. The change begins at a seeded onset
between 1 h and 1.5 h into the stream (the 1-hour window is full by then).

Detectors, all on the same events:

- **Slicewatch**: ``DriftEngine`` + ``AlertEvaluator`` with the default settings and rules
  (``monitor.config``: 60 s buckets x 60 = 1 h window, evaluation every 15 s, hold 3 evaluations,
  min 200 samples), composed by ``Pipeline`` (no database), a labelled reference profile built from
  the history. Verdict = first firing transition of the scenario's alert after onset.
  **Slicewatch w/o ADWIN rule**: a second ``AlertEvaluator`` on the same snapshots without the
  ``quality.adwin_drift`` rule (the engine's ADWIN on correctness), i.e. window comparisons only.
- **river ADWIN / PageHinkley** (defaults) on the per-event signal: ``x0`` for input drift, the
  confidence for output drift, correctness for quality, correctness of slice events for the slice.
- **Evidently** ``DataDriftPreset`` (its default tests) on tumbling 1 h windows (Slicewatch's window)
  against the same reference rows; verdict at the end of the first drifted window.
- **Alibi Detect** ``CVMDriftOnline`` (``x0``, confidence) and ``FETDriftOnline`` (correctness,
  one-sided "less") on the same per-event signals, calibrated to ``--alibi-ert``.

Stationary streams give false alarms per 10^6 events: every firing alert (Slicewatch) or every
detection on any of the four signals (river, Alibi) or any drifted column of any window (Evidently).
``--scale`` multiplies the number of seeds and the stationary hours.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from statistics import NormalDist
from typing import Any

import msgspec
import numpy as np
import polars as pl
from river.drift import ADWIN, PageHinkley

from benchmarks.peers_env import PeerRun
from monitor.alerts.state import AlertEvaluator
from monitor.app import build_drift, build_evaluator
from monitor.config import Settings
from monitor.events import InferenceEvent, PromotionEvent
from monitor.pipeline import Pipeline
from monitor.records import LabelChange, WriteResult
from monitor.snapshot import Snapshot
from monitor.stats.columns import records_from_events
from monitor.stats.profile_builder import build_profile_from_records
from tests.stats_fixtures import StreamSpec, make_batch

SLICE_KEY, SLICE_VALUE = "domain", "regulatory"
SLICE = f"{SLICE_KEY}={SLICE_VALUE}"
PROMOTED_SLICE = "language=es"  # 10% of traffic
HISTORY_S = 1800.0
ONSET_S = 3600.0
SIGNALS = ("x0", "confidence", "correct", "slice_correct")
BASE = StreamSpec(n_numeric=1, n_categorical=1, n_boolean=1, lang_p=(0.75, 0.10, 0.05, 0.05, 0.05))
OLD, NEW = "m1", "v2"  # the promotion scenarios: v2 replaces m1 at onset (rollback target m1)


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str  # input | output | quality | slice | none
    horizon_s: float
    change: dict[str, Any] = field(default_factory=dict)
    ramp_s: float = 0.0  # gradual: the shift grows linearly from 0 over ramp_s
    label_delay_s: tuple[float, float] | None = None  # labels arrive uniformly this late (Slicewatch only)
    promote: bool = False  # a new version (v2, rollback target m1) serves from onset

    @property
    def signal(self) -> str:
        return {"input": "x0", "output": "confidence", "quality": "correct", "slice": "slice_correct",
                "category": "c0_new", "promotion": "es_correct"}[self.kind]


SCENARIOS = (
    Scenario("abrupt input shift (x0 +1 sd)", "input", 3600, {"input_shift": 1.0}),
    Scenario("gradual input shift (x0 0 -> +1 sd over 1 h)", "input", 7200, {"input_shift": 1.0}, ramp_s=3600),
    Scenario("output shift (P(yes) +0.1, confidence -0.1)", "output", 3600, {"output_shift": 0.1}),
    Scenario("quality drop (accuracy 0.90 -> 0.87)", "quality", 5400, {"accuracy_drop": 0.03}),
    Scenario("slice drop (domain=regulatory, 5% of traffic, 0.90 -> 0.85)", "slice", 5400,
             {"slice_accuracy_drop": {(SLICE_KEY, SLICE_VALUE): 0.05}}),
    Scenario("new category (c0: a value the reference never saw, 5% of traffic)", "category", 3600,
             {"new_category_share": 0.05}),
    Scenario("promotion regression (v2: language=es, 10%, 0.90 -> 0.80), labels 1-30 min late", "promotion",
             5400, {"slice_accuracy_drop": {("language", "es"): 0.10}}, label_delay_s=(60.0, 1800.0), promote=True),
    Scenario("promotion regression (v2: language=es, 10%, 0.90 -> 0.80), labels 90-150 min late", "promotion",
             14400, {"slice_accuracy_drop": {("language", "es"): 0.10}}, label_delay_s=(5400.0, 9000.0),
             promote=True),
)


def settings() -> Settings:
    """The default settings with the protected slice declared."""
    return Settings.model_validate({"stats": {"protected_slices": {SLICE_KEY: [SLICE_VALUE], "language": ["es"]}}})


def without_adwin_rule(cfg: Settings) -> Settings:
    """``cfg`` without the rule on the engine's ADWIN signal (``quality.adwin_drift``): window rules only,
    the default rule set before that rule was added."""
    rules = {k: v for k, v in cfg.alerts.rules.items() if k != "quality.adwin_drift"}
    return cfg.model_copy(update={"alerts": cfg.alerts.model_copy(update={"rules": rules})})


def relevant(kind: str, signal: str, slice_: str, feature: str) -> bool:
    """Is a firing alert the scenario's verdict?"""
    if kind == "input":
        return signal == "input" and feature == "x0"
    if kind == "output":
        return signal == "output"
    if kind == "quality":
        return signal == "quality" and slice_ == "all"
    if kind == "category":
        return signal == "input" and feature == "c0"
    if kind == "promotion":
        return signal == "slice" and slice_ == PROMOTED_SLICE
    return signal == "slice" and slice_ == SLICE


# ---- streams ------------------------------------------------------------------------------------
@dataclass
class Columns:
    """The per-event values the peers see (one row per event, in served_at order)."""

    t: list[float] = field(default_factory=list)
    x0: list[float] = field(default_factory=list)
    c0: list[str] = field(default_factory=list)
    b0: list[int] = field(default_factory=list)
    tokens_in: list[int] = field(default_factory=list)
    output: list[str] = field(default_factory=list)
    confidence: list[float] = field(default_factory=list)
    domain: list[str] = field(default_factory=list)
    correct: list[int] = field(default_factory=list)
    language: list[str] = field(default_factory=list)
    model: list[str] = field(default_factory=list)

    def add(self, events: list[InferenceEvent], labels: list[LabelChange]) -> None:
        correct = {lc.request_id: int(bool(lc.new.was_correct)) for lc in labels}
        for e in events:
            self.language.append(e.slice["language"])
            self.model.append(e.model_id)
            f = e.input_features
            self.t.append(e.served_at.timestamp())
            self.x0.append(float(f["x0"]))  # type: ignore[arg-type]
            self.c0.append(str(f["c0"]))
            self.b0.append(int(bool(f["b0"])))
            self.tokens_in.append(int(e.tokens_in or 0))
            self.output.append(e.output)
            self.confidence.append(float(e.confidence or 0.0))
            self.domain.append(e.slice[SLICE_KEY])
            self.correct.append(correct[e.request_id])

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame({k: getattr(self, k) for k in self.__dataclass_fields__ if k not in ("language", "model")})

    def signal(self, name: str, start: int) -> tuple[list[float], list[float]]:
        """A per-event signal for river from row ``start`` on: (times, values)."""
        n = len(self.t)
        if name == "slice_correct":
            keep = [i for i in range(start, n) if self.domain[i] == SLICE_VALUE]
        elif name == "es_correct":
            keep = [i for i in range(start, n) if self.language[i] == "es"]
        else:
            keep = list(range(start, n))
        if name in ("slice_correct", "es_correct"):
            return [self.t[i] for i in keep], [float(self.correct[i]) for i in keep]
        if name == "c0_new":
            return [self.t[i] for i in keep], [1.0 if self.c0[i] == "new" else 0.0 for i in keep]
        return [self.t[i] for i in keep], [float(v) for v in getattr(self, name)[start:]]

    def accuracy(self, model: str, language: str, since: float, until: float) -> float | None:
        """The accuracy ``model`` had on ``language`` in ``[since, until)`` (the rollback target's)."""
        hits = [self.correct[i] for i in range(len(self.t))
                if since <= self.t[i] < until and self.model[i] == model and self.language[i] == language]
        return sum(hits) / len(hits) if hits else None


def chunks(sc: Scenario | None, seed: int, rate: float, every: float, end: float,
           onset: float) -> Iterator[tuple[float, list[InferenceEvent], list[LabelChange]]]:
    """The stream in evaluation intervals: ``(interval end, events, labels)``."""
    rng = np.random.default_rng(seed)
    spec = replace(BASE, onset=onset, **(sc.change if sc else {}))
    n = round(rate * every)
    t = 0.0
    while t < end - 1e-9:
        s = spec
        if sc is not None and sc.ramp_s > 0:
            frac = min(1.0, max(0.0, (t + every / 2 - onset) / sc.ramp_s))
            s = replace(spec, input_shift=sc.change["input_shift"] * frac)
        ev, lab = make_batch(rng, s, n, t, t + every)
        t += every
        yield t, ev, lab


def history(seed: int, rate: float) -> tuple[list[InferenceEvent], list[LabelChange]]:
    rng = np.random.default_rng([seed, 7])
    ev, lab = make_batch(rng, BASE, round(rate * HISTORY_S), -HISTORY_S, 0.0)
    return ev, lab


LABEL_SIGNALS = frozenset({"correct", "slice_correct", "es_correct"})


def delivered(signal: str, labels: list[LabelChange], at: float) -> tuple[list[float], list[float]]:
    """A label signal from the labels delivered at ``at`` (in served_at order), for river."""
    keep = sorted((lc for lc in labels if signal == "correct"
                   or (signal == "slice_correct" and lc.slice.get(SLICE_KEY) == SLICE_VALUE)
                   or (signal == "es_correct" and lc.slice.get("language") == "es")), key=lambda lc: lc.served_at)
    return [at] * len(keep), [float(bool(lc.new.was_correct)) for lc in keep]


# ---- in-process detectors -----------------------------------------------------------------------
class RiverPair:
    """ADWIN and PageHinkley (river defaults) on one per-event signal; records detection times."""

    def __init__(self) -> None:
        self.adwin = ADWIN()
        self.ph = PageHinkley()
        self.hits: dict[str, list[float]] = {"ADWIN": [], "PageHinkley": []}

    def update(self, times: list[float], values: list[float]) -> None:
        adwin, ph = self.adwin, self.ph
        ha, hp = self.hits["ADWIN"], self.hits["PageHinkley"]
        for t, x in zip(times, values, strict=True):
            adwin.update(x)
            if adwin.drift_detected:
                ha.append(t)
            ph.update(x)
            if ph.drift_detected:
                hp.append(t)


@dataclass
class StreamResult:
    scenario: str
    kind: str
    seed: int
    onset: float | None
    end: float
    times: np.ndarray
    slicewatch: list[tuple[float, str, str, str, str]]  # firing: (time, signal, slice, feature, action)
    slicewatch_window: list[tuple[float, str, str, str]]  # the same without the quality.adwin_drift rule
    river: dict[str, dict[str, list[float]]]  # signal -> detector -> detection times
    seconds: float


@dataclass(frozen=True)
class Planned:
    scenario: Scenario | None
    seed: int
    onset: float | None
    end: float

    @property
    def name(self) -> str:
        sc = self.scenario
        return f"{'stationary' if sc is None else 'gradual' if sc.ramp_s else sc.kind}-{self.seed}"

    @property
    def kind(self) -> str:
        return "none" if self.scenario is None else self.scenario.kind


def planned(sc: Scenario | None, seed: int, stationary_s: float) -> Planned:
    """Onset (seeded, between 1 h and 1.5 h) and end of one stream."""
    if sc is None:
        return Planned(None, seed, None, stationary_s)
    onset = ONSET_S + float(np.floor(np.random.default_rng([seed, 11]).uniform(0, 1800)))
    return Planned(sc, seed, onset, onset + sc.horizon_s)


def _write(frame: pl.DataFrame, stem: Path) -> None:
    """``stem.parquet`` for Evidently, ``stem.npz`` for Alibi Detect (its environment has numpy 1, no
    pyarrow); each written then renamed, as the peers wait for the file to appear."""
    tmp = stem.with_name(stem.name + ".tmp")
    frame.write_parquet(tmp)
    tmp.replace(stem.with_name(stem.name + ".parquet"))
    with open(tmp, "wb") as f:
        np.savez(f, t=frame["t"].to_numpy(), x0=frame["x0"].to_numpy(), confidence=frame["confidence"].to_numpy(),
                 correct=frame["correct"].to_numpy(), in_slice=(frame["domain"] == SLICE_VALUE).to_numpy())
    tmp.replace(stem.with_name(stem.name + ".npz"))


def run_stream(p: Planned, rate: float, out_dir: Path | None, cfg: Settings) -> StreamResult:
    sc, seed = p.scenario, p.seed
    every = cfg.stats.evaluate_every_s
    onset = p.onset if p.onset is not None else math.inf
    end = p.end
    engine = build_drift(cfg)
    hist_ev, hist_lab = history(seed, rate)
    profile = build_profile_from_records(
        "m1", records_from_events(hist_ev)["m1"], hist_lab,
        numeric_bins=cfg.stats.numeric_bins, top_k_categories=cfg.stats.top_k_categories,
        protected_slices=cfg.stats.protected_slices, labelled=True, source="file", created_at=0.0,
    )
    engine.set_reference("m1", profile)
    if out_dir is not None:
        ref = Columns()
        ref.add(hist_ev, hist_lab)
        _write(ref.frame(), out_dir / f"{p.name}.ref")
    cols = Columns()

    def target_quality(model: str, slice_: str, since: float, until: float) -> float | None:
        return cols.accuracy(model, slice_.partition("=")[2], since, until) if slice_ == PROMOTED_SLICE else None

    evaluator: AlertEvaluator = build_evaluator(cfg, target_quality)
    # a second evaluator on the same snapshots: the default rules without quality.adwin_drift
    window_only: AlertEvaluator = build_evaluator(without_adwin_rule(cfg))
    fired_window: list[tuple[float, str, str, str]] = []

    def on_snapshot(snap: Snapshot) -> None:
        for tr in window_only.evaluate(snap, {}, snap.evaluated_at):
            if tr.to_state == "firing":
                fired_window.append((tr.at, tr.alert.signal, tr.alert.slice, tr.alert.feature))

    pipe = Pipeline(engine=engine, evaluator=evaluator, db=None, evaluate_every_s=every, on_snapshot=on_snapshot)
    signals = SIGNALS if sc is None else (sc.signal,)
    river = {s: RiverPair() for s in signals}
    delays = np.random.default_rng([seed, 13])
    waiting: list[tuple[float, int, LabelChange]] = []  # heap of labels not delivered yet (label_delay_s)
    promoted = False
    t0 = time.perf_counter()
    for t_end, ev, lab in chunks(sc, seed, rate, every, end, onset):
        if sc is not None and sc.promote:
            ev = [msgspec.structs.replace(e, model_id=NEW) if e.served_at.timestamp() >= onset else e for e in ev]
            lab = [replace(lc, model_id=NEW) if lc.served_at >= onset else lc for lc in lab]
        promotions = []
        if sc is not None and sc.promote and not promoted and t_end > onset:
            promoted = True
            promotions = [PromotionEvent(schema_version=1, model_id=NEW, rollback_target=OLD,
                                         promoted_at=datetime.fromtimestamp(onset, UTC))]
        start = len(cols.t)
        cols.add(ev, lab)  # the peers see every label at once
        if sc is not None and sc.label_delay_s is not None:
            lo, hi = sc.label_delay_s
            for lc in lab:
                heapq.heappush(waiting, (lc.served_at + float(delays.uniform(lo, hi)), id(lc), lc))
            lab = []
            while waiting and waiting[0][0] <= t_end:
                lab.append(heapq.heappop(waiting)[2])
        pipe.on_written(WriteResult(new_inferences=ev, label_changes=lab, promotions=promotions), t_end)
        pipe.tick(t_end)
        for s, pair in river.items():
            if sc is not None and sc.label_delay_s is not None and s in LABEL_SIGNALS:
                pair.update(*delivered(s, lab, t_end))  # labels as they arrive, like Slicewatch
            else:
                pair.update(*cols.signal(s, start))
    seconds = time.perf_counter() - t0
    fired = [(tr.at, tr.alert.signal, tr.alert.slice, tr.alert.feature, tr.alert.action)
             for tr in pipe.stats.transitions if tr.to_state == "firing"]
    if out_dir is not None:
        _write(cols.frame(), out_dir / p.name)
    return StreamResult(sc.name if sc else "stationary", sc.kind if sc else "none", seed,
                        None if sc is None else onset, end, np.asarray(cols.t),
                        fired, fired_window, {s: p.hits for s, p in river.items()}, seconds)


# ---- peers (subprocesses in their own environments) --------------------------------------------
EVIDENTLY_SCRIPT = r'''
import json, os, sys, time
import pandas as pd
def wait(path):  # the benchmark writes each stream when it is done; give up if it died
    while not os.path.exists(path):
        if os.getppid() == 1:
            sys.exit("benchmark process gone")
        time.sleep(0.5)
from evidently import Report, Dataset, DataDefinition
from evidently.presets import DataDriftPreset
import evidently
job = json.load(open(sys.argv[1]))
NUM = {"x0", "tokens_in", "confidence"}
def drift(ref, cur, columns):
    dd = DataDefinition(numerical_columns=[c for c in columns if c in NUM],
                        categorical_columns=[c for c in columns if c not in NUM])
    snap = Report([DataDriftPreset(columns=columns)]).run(
        Dataset.from_pandas(cur[columns], data_definition=dd), Dataset.from_pandas(ref[columns], data_definition=dd))
    out = {}
    for m in snap.dict()["metrics"]:
        name = m["metric_name"]
        if not name.startswith("ValueDrift("):
            continue
        col = m["config"]["column"]
        thr = float(m["config"]["threshold"])
        method = m["config"]["method"]
        out[col] = bool(m["value"] < thr) if "p_value" in method else bool(m["value"] >= thr)
    return out
res = {}
for s in job["streams"]:
    wait(s["path"])
    df = pd.read_parquet(s["path"]); ref = pd.read_parquet(s["ref"])
    for f in (df, ref):
        f["b0"] = f["b0"].astype(str); f["correct"] = f["correct"].astype(str)
    w = job["window_s"]; k = 0; windows = []
    while (k + 1) * w <= s["end"] + 1e-6:
        cur = df[(df.t >= k * w) & (df.t < (k + 1) * w)]
        verdict = drift(ref, cur, s["columns"]) if s["columns"] else {}
        if s["slice"]:
            sl = drift(ref[ref.domain == s["slice"]], cur[cur.domain == s["slice"]], ["correct"])
            verdict["slice_correct"] = sl["correct"]
        windows.append([(k + 1) * w, verdict])
        k += 1
    res[s["id"]] = windows
print(json.dumps({"version": evidently.__version__, "streams": res}))
'''

ALIBI_SCRIPT = r'''
import json, os, sys, time, warnings
warnings.filterwarnings("ignore")
def wait(path):  # the benchmark writes each stream when it is done; give up if it died
    while not os.path.exists(path):
        if os.getppid() == 1:
            sys.exit("benchmark process gone")
        time.sleep(0.5)
import numpy as np
from alibi_detect.cd import CVMDriftOnline, FETDriftOnline
import alibi_detect
job = json.load(open(sys.argv[1]))
def column(path, signal):
    z = np.load(path)
    keep = z["in_slice"] if signal == "slice_correct" else np.ones(len(z["t"]), bool)
    return z["t"][keep], z["correct" if signal == "slice_correct" else signal][keep].astype(np.float32)
detectors, config_s = {}, {}
rng = np.random.default_rng(0)
for signal, ref_path in job["configure"].items():
    wait(ref_path)
    t = time.perf_counter()
    if signal in ("x0", "confidence"):
        _, ref = column(ref_path, signal)
        ref = rng.choice(ref, job["cvm_ref"], replace=False)
        detectors[signal] = CVMDriftOnline(ref, ert=job["ert"], window_sizes=job["cvm_windows"],
                                           n_bootstraps=job["n_bootstraps"], verbose=False)
    else:  # one FET detector for correctness (reference accuracy 0.9 overall and in the slice)
        _, ref = column(ref_path, "correct")
        ref = rng.choice(ref, min(len(ref), job["fet_ref"]), replace=False)
        detectors[signal] = FETDriftOnline(ref, ert=job["ert"], window_sizes=job["fet_windows"],
                                           n_bootstraps=job["n_bootstraps"], alternative="less", verbose=False)
    config_s[signal] = time.perf_counter() - t
detectors["correct"] = detectors["slice_correct"] = detectors.get("fet")
res = {}
for task in job["tasks"]:
    det = detectors[task["signal"]]
    det.reset_state()
    wait(task["path"])
    ts, xs = column(task["path"], task["signal"])
    keep = (ts >= task["start"]) & (ts < task["stop"])
    ts, xs = ts[keep][: task["max_events"]], xs[keep][: task["max_events"]]
    hits = []; fed = 0; t0 = time.perf_counter()
    for t, x in zip(ts, xs):
        fed += 1
        if det.predict(np.array([x]), return_test_stat=False)["data"]["is_drift"]:
            hits.append(float(t)); det.reset_state()
            if task["onset"] is not None and t >= task["onset"]:
                break
    span = [float(ts[0]), float(ts[fed - 1])] if fed else [0.0, 0.0]
    res[task["id"]] = {"hits": hits, "fed": fed, "span": span, "seconds": time.perf_counter() - t0}
print(json.dumps({"version": alibi_detect.__version__, "config_s": config_s, "tasks": res}))
'''


def evidently_job(plan: list[Planned], data: Path, window_s: float) -> dict:
    streams = []
    for p in plan:
        cols = {"input": ["x0"], "output": ["output", "confidence"], "quality": ["correct"], "slice": [],
                "category": ["c0"], "promotion": [],
                "none": ["x0", "c0", "b0", "tokens_in", "output", "confidence", "correct"]}[p.kind]
        streams.append({"id": p.name, "path": str(data / f"{p.name}.parquet"),
                        "ref": str(data / f"{p.name}.ref.parquet"), "end": p.end, "columns": cols,
                        "slice": SLICE_VALUE if p.kind in ("slice", "none") else None})
    return {"window_s": window_s, "streams": streams}


def alibi_job(plan: list[Planned], data: Path, args: argparse.Namespace) -> dict:
    tasks: list[dict[str, Any]] = []
    configure: dict[str, str] = {}
    for p in plan:
        signals = SIGNALS if p.scenario is None else (p.scenario.signal,)
        for s in signals:
            if s not in SIGNALS:  # no Alibi detector for a new category or a second slice here
                continue
            key = "fet" if s in ("correct", "slice_correct") else s
            configure.setdefault(key, str(data / f"{p.name}.ref.npz"))
            share = 0.05 if s == "slice_correct" else 1.0
            if p.onset is None:
                start, stop, cap = 0.0, p.end, args.alibi_stationary_events
            else:
                # start well before onset (3x the largest window): the same state as running all along,
                # since an online detector only remembers its windows
                lead = max(300.0, 3 * max(args.alibi_fet_windows + args.alibi_cvm_windows) / (args.rate * share))
                start, stop, cap = p.onset - lead, p.end, 10**9
            tasks.append({"id": f"{p.name}:{s}", "path": str(data / f"{p.name}.npz"), "signal": s,
                          "start": start, "stop": stop, "max_events": cap, "onset": p.onset})
    return {"configure": configure, "tasks": tasks, "slice_value": SLICE_VALUE, "ert": args.alibi_ert,
            "n_bootstraps": args.alibi_bootstraps, "cvm_ref": 300, "cvm_windows": args.alibi_cvm_windows,
            "fet_ref": 1000, "fet_windows": args.alibi_fet_windows}


# ---- limits -------------------------------------------------------------------------------------
def limit(sc: Scenario, rate: float, alpha: float = 0.01) -> tuple[float, float, str]:
    """The fewest samples a level-``alpha`` one-sided test needs to see the change (at 50% power:
    the expected statistic reaches the critical value), as samples and seconds of event time after
    onset at ``rate`` events/s, with what the samples are. Known reference (the 30 min of history
    are treated as exact), the evaluation cadence left out: the floor any detector starts from."""
    z2 = NormalDist().inv_cdf(1 - alpha) ** 2
    if sc.kind == "input" and sc.ramp_s:
        # the mean shift since onset grows as t / (2 ramp) sd: rate t (t / (2 ramp))^2 >= z^2
        t = (z2 * 4 * sc.ramp_s**2 / rate) ** (1 / 3)
        return rate * t, t, "events"
    if sc.kind == "input":  # mean shift of 1 sd
        n = z2 / sc.change["input_shift"] ** 2
        return n, n / rate, "events"
    if sc.kind == "output":  # P(yes) 0.5 -> 0.5 + shift
        d = sc.change["output_shift"]
        n = z2 * 0.25 / d**2
        return n, n / rate, "events"
    if sc.kind == "quality":
        d = sc.change["accuracy_drop"]
        n = z2 * 0.09 / d**2
        return n, n / rate, "labels"
    if sc.kind == "slice":
        d = next(iter(sc.change["slice_accuracy_drop"].values()))
        n = z2 * 0.09 / d**2
        return n, n / (rate * 0.05), "labels"
    if sc.kind == "category":
        # the reference never saw the value: under the null it has probability <= 1 / reference size,
        # so the first occurrence is already significant; expected wait 1 / share events
        n = 1 / sc.change["new_category_share"]
        return n, n / rate, "events"
    # promotion: labels of the 10% slice arrive uniformly label_delay_s after their prediction
    d = next(iter(sc.change["slice_accuracy_drop"].values()))
    n = z2 * 0.09 / d**2
    lo, hi = sc.label_delay_s or (0.0, 0.0)
    per_s = rate * 0.10
    t = lo
    while True:  # labels arrived by t = per_s * integral_0^t P(delay <= t - s) ds
        grid = np.linspace(0.0, t, 2001)
        arrived = per_s * float(np.trapezoid(np.clip((t - grid - lo) / max(hi - lo, 1e-9), 0.0, 1.0), grid))
        if arrived >= n:
            return n, t, "labels"
        t += 5.0


# ---- scoring ------------------------------------------------------------------------------------
@dataclass
class Row:
    detected: int = 0
    streams: int = 0
    delays_s: list[float] = field(default_factory=list)
    delays_ev: list[int] = field(default_factory=list)
    early: int = 0

    def add(self, r: StreamResult, hits: list[float]) -> None:
        assert r.onset is not None
        self.streams += 1
        self.early += sum(1 for h in hits if h < r.onset)
        after = [h for h in hits if r.onset <= h <= r.end]
        if after:
            self.detected += 1
            self.delays_s.append(after[0] - r.onset)
            self.delays_ev.append(int(np.searchsorted(r.times, after[0]) - np.searchsorted(r.times, r.onset)))


def cell(row: Row | None) -> tuple[str, str, str, str]:
    if row is None or row.streams == 0:
        return "n/a", "n/a", "n/a", "n/a"
    if not row.delays_s:
        return f"{row.detected}/{row.streams}", "-", "-", str(row.early)
    return (f"{row.detected}/{row.streams}", f"{statistics.median(row.delays_ev):,.0f}",
            f"{statistics.median(row.delays_s) / 60:.1f}", str(row.early))


DETECTORS = ("Slicewatch", "Slicewatch w/o ADWIN rule", "river ADWIN", "river PageHinkley", "Evidently (1 h windows)",
             "Alibi Detect online")


def score(results: list[StreamResult], names: list[str], evid: dict | None, alibi: dict | None,
          rate: float) -> None:
    rows: dict[tuple[str, str], Row] = {}
    pre = {"Slicewatch": 0, "Slicewatch w/o ADWIN rule": 0}  # firings of any alert before onset
    pre_events = 0
    fa: dict[str, list[float]] = {d: [0.0, 0.0] for d in DETECTORS}  # detections, stream events
    for r, name in zip(results, names, strict=True):
        n_events = len(r.times)
        sc = next((s for s in SCENARIOS if s.name == r.scenario), None)
        hits: dict[str, list[float] | None] = {
            "Slicewatch": [f[0] for f in r.slicewatch if sc is None or relevant(sc.kind, f[1], f[2], f[3])],
            "Slicewatch w/o ADWIN rule": [
                f[0] for f in r.slicewatch_window if sc is None or relevant(sc.kind, f[1], f[2], f[3])
            ],
        }
        for det in ("ADWIN", "PageHinkley"):
            hits[f"river {det}"] = sorted(h for s in r.river for h in r.river[s][det])
        if evid is not None:
            windows = evid["streams"][name]
            want = {"input": {"x0"}, "output": {"output", "confidence"}, "quality": {"correct"},
                    "slice": {"slice_correct"}}.get(r.kind)
            hits["Evidently (1 h windows)"] = [
                end for end, verdict in windows for col, d in verdict.items() if d and (want is None or col in want)
            ]
        else:
            hits["Evidently (1 h windows)"] = None
        if alibi is not None:
            tasks = {k.split(":", 1)[1]: v for k, v in alibi["tasks"].items() if k.split(":", 1)[0] == name}
            hits["Alibi Detect online"] = sorted(h for v in tasks.values() for h in v["hits"])
        else:
            hits["Alibi Detect online"] = None
        if sc is None:
            for det, h in hits.items():
                if h is None:
                    continue
                if det == "Alibi Detect online" and alibi is not None:
                    # each signal was fed only a prefix: normalise by the stream events it spanned
                    for v in tasks.values():
                        span_events = max(1.0, (v["span"][1] - v["span"][0]) * rate)
                        fa[det][0] += len(v["hits"]) / span_events * n_events
                    fa[det][1] += n_events
                else:
                    fa[det][0] += len(h)
                    fa[det][1] += n_events
            continue
        for det, h in hits.items():
            if h is not None:
                rows.setdefault((sc.name, det), Row()).add(r, h)
        assert r.onset is not None
        pre_events += int(np.searchsorted(r.times, r.onset))
        pre["Slicewatch"] += sum(1 for f in r.slicewatch if f[0] < r.onset)
        pre["Slicewatch w/o ADWIN rule"] += sum(1 for f in r.slicewatch_window if f[0] < r.onset)
    print("\n| scenario | detector | detected | median delay (events) | median delay (min) | alarms before onset |")
    print("|---|---|---|---|---|---|")
    for sc in SCENARIOS:
        for det in DETECTORS:
            if (sc.name, det) in rows:
                print(f"| {sc.name} | {det} | " + " | ".join(cell(rows.get((sc.name, det)))) + " |")
    if pre_events:
        print(f"\nfirings of any Slicewatch alert before onset in the drift streams ({pre_events:,} events): "
              + ", ".join(f"{k} {v}" for k, v in pre.items()))
    print("\n| scenario | limit (fewest samples, level 1%) | limit (min) | Slicewatch median (min) | x limit |"
          " actions of the first relevant firing |")
    print("|---|---|---|---|---|---|")
    for sc in SCENARIOS:
        row = rows.get((sc.name, "Slicewatch"))
        if row is None:
            continue
        n, secs, what = limit(sc, rate)
        med = statistics.median(row.delays_s) if row.delays_s else None
        acts = sorted({a for r in results if r.scenario == sc.name and r.onset is not None
                       for a in [next((f[4] for f in r.slicewatch if f[0] >= r.onset
                                       and relevant(sc.kind, f[1], f[2], f[3])), "-")]})
        print(f"| {sc.name} | {n:,.0f} {what} | {secs / 60:.2f} | "
              + ("-" if med is None else f"{med / 60:.1f}") + " | "
              + ("-" if med is None else f"{med / max(secs, 1e-9):,.0f}") + f" | {', '.join(acts)} |")
    print("\n| detector | false alarms per 10^6 stationary events | alarms / events |")
    print("|---|---|---|")
    for det, (n, ev) in fa.items():
        if ev:
            print(f"| {det} | {n / ev * 1e6:,.1f} | {n:,.1f} / {ev:,.0f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies seeds and stationary hours")
    ap.add_argument("--seeds", type=int, default=None, help="seeds per scenario (default 2 x scale)")
    ap.add_argument("--rate", type=float, default=20.0, help="events per second of event time")
    ap.add_argument("--stationary-hours", type=float, default=None, help="per seed (default 4 x scale)")
    ap.add_argument("--scenarios", default="", help="comma-separated kinds to run (input,gradual,output,...)")
    ap.add_argument("--no-peers", action="store_true", help="Slicewatch and river only")
    ap.add_argument("--alibi-ert", type=int, default=2000)
    ap.add_argument("--alibi-bootstraps", type=int, default=4000)
    ap.add_argument("--alibi-cvm-windows", type=int, nargs="+", default=[50, 200])
    ap.add_argument("--alibi-fet-windows", type=int, nargs="+", default=[100, 500])
    ap.add_argument("--alibi-stationary-events", type=int, default=20000, help="per signal")
    args = ap.parse_args()
    seeds = args.seeds or max(1, round(2 * args.scale))
    stat_h = args.stationary_hours if args.stationary_hours is not None else 4.0 * args.scale
    cfg = settings()
    window_s = cfg.stats.bucket_seconds * cfg.stats.window_buckets
    wanted = set(filter(None, args.scenarios.split(",")))
    plan: list[Planned] = []
    for sc in SCENARIOS:
        key = "gradual" if sc.ramp_s else sc.kind
        if not wanted or key in wanted:
            plan += [planned(sc, seed, 0.0) for seed in range(seeds)]
    if not wanted or "stationary" in wanted:
        plan += [planned(None, 1000 + seed, stat_h * 3600) for seed in range(seeds)]
    print(f"{len(plan)} streams at {args.rate:g} events/s, {seeds} seeds per scenario, "
          f"{stat_h:g} h per stationary stream; Slicewatch window {window_s / 3600:g} h "
          f"({window_s * args.rate:,.0f} events), evaluation every {cfg.stats.evaluate_every_s:g} s", flush=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="slicewatch-detection-") as tmp:
        data = Path(tmp)
        runs: dict[str, PeerRun] = {}
        if not args.no_peers:  # started first: they configure, then take each stream as it is written
            jobs = {"evidently": evidently_job(plan, data, window_s), "alibi": alibi_job(plan, data, args)}
            for peer, job in jobs.items():
                (data / f"{peer}.json").write_text(json.dumps(job))
                script = data / f"{peer}_peer.py"
                script.write_text(EVIDENTLY_SCRIPT if peer == "evidently" else ALIBI_SCRIPT)
                runs[peer] = PeerRun(peer, script, [str(data / f"{peer}.json")])
        results = []
        for p in plan:
            r = run_stream(p, args.rate, None if args.no_peers else data, cfg)
            results.append(r)
            print(f"  {r.scenario} seed {p.seed}: {len(r.times):,} events, {len(r.slicewatch)} Slicewatch firings, "
                  f"{r.seconds:.0f} s ({len(r.times) / r.seconds:,.0f} events/s incl. generation)", flush=True)
        print(f"Slicewatch + river done after {time.perf_counter() - started:.0f} s", flush=True)
        evid = runs["evidently"].result() if "evidently" in runs else None
        alibi = runs["alibi"].result() if "alibi" in runs else None
        if evid is not None:
            print(f"Evidently {evid['version']}: DataDriftPreset defaults per column")
        if alibi is not None:
            print(f"Alibi Detect {alibi['version']}: ERT {args.alibi_ert} events, {args.alibi_bootstraps} "
                  f"bootstraps, CVM windows {args.alibi_cvm_windows}, FET windows {args.alibi_fet_windows}; "
                  "configuration " + ", ".join(f"{k} {v:.0f} s" for k, v in alibi["config_s"].items()))
        score(results, [p.name for p in plan], evid, alibi, args.rate)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
