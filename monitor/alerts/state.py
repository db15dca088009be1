"""The alert state machine (after Prometheus ``rules/alerting.go``): inactive, pending, firing, resolved.

Each rule is applied to every snapshot value it names; an alert is keyed by the fingerprint of its
labels (alertname, model_id, slice, signal, feature, statistic), so severity can change while it
fires without making a new alert. A breach must hold for ``hold_evaluations`` consecutive
evaluations before the alert fires, and be absent for ``clear_evaluations`` before it resolves.
A value with too few samples is no verdict (counters unchanged); a value missing from the
snapshot counts as no breach when the snapshot covers its model (``models`` or any value), and as
no verdict when it does not. Resolved alerts are kept (and re-sent by the sinks) for
``resolved_resend_s``. Pure: the time is an argument; ``target_quality`` is injected.

Examples
--------
>>> from monitor.snapshot import Snapshot, SignalValue
>>> ev = AlertEvaluator({"input.psi": Rule("input.psi", 0.2, 0.3, min_samples=10, hold_evaluations=2)})
>>> snap = lambda t, v: Snapshot(t, t - 60, t, (SignalValue("m", "all", "input", "x", "psi", v, 500),))
>>> [t.to_state for t in ev.evaluate(snap(0.0, 0.5), {}, 0.0)]
['pending']
>>> [(t.to_state, t.alert.action) for t in ev.evaluate(snap(15.0, 0.5), {}, 15.0)]
[('firing', 'retrain')]
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from monitor.alerts.actions import TargetQuality, decide_action
from monitor.alerts.rules import Rule, Severity
from monitor.events import PromotionEvent
from monitor.snapshot import (
    AGGREGATE,
    CELL_ORDER,
    MISSING_STATISTICS,
    QUANTILE_STATISTICS,
    TESTED_STATISTICS,
    DistributionTable,
    LineageChange,
    QuantileTable,
    Segment,
    SignalValue,
    Snapshot,
    ValueSet,
)

State = Literal["inactive", "pending", "firing", "resolved"]

ALERTNAMES = {
    "input": "SlicewatchInputDrift",
    "output": "SlicewatchOutputDrift",
    "quality": "SlicewatchQualityRegression",
    "slice": "SlicewatchSliceRegression",
    "label_coverage": "SlicewatchLabelCoverageDrop",
    "cohort": "SlicewatchCohortImbalance",
}
TABLE_STATISTICS = MISSING_STATISTICS + TESTED_STATISTICS
MAX_KEYS_CACHED = 100_000
"""Fingerprints kept for reuse (rule-bearing values are O(models x slices x features))."""
LABEL_NAMES = ("alertname", "model_id", "slice", "signal", "feature", "statistic")


def alert_signal(v: SignalValue) -> str:
    """Quality regressions on a protected slice are their own signal, ``slice``."""
    return "slice" if v.signal == "quality" and v.slice != AGGREGATE else v.signal


def fingerprint(labels: Mapping[str, str]) -> str:
    """sha256 over the sorted labels; stable across processes and restarts.

    >>> fingerprint({"b": "2", "a": "1"}) == fingerprint({"a": "1", "b": "2"})
    True
    """
    canonical = json.dumps(sorted(labels.items()), separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class AlertState:
    """One alert that is pending, firing or recently resolved (immutable; replaced on change)."""

    fingerprint: str
    alertname: str
    model_id: str
    slice: str
    signal: str
    feature: str
    statistic: str
    state: State
    severity: str
    active_since: float
    last_evaluated_at: float
    value: float
    threshold: float
    sample_count: int
    window_start: float
    window_end: float
    action: str = "investigate"
    actions: tuple[str, ...] = ()
    rollback_target: str | None = None
    suspected_causes: tuple[LineageChange, ...] = ()
    fired_at: float | None = None
    resolved_at: float | None = None
    reference_id: str | None = None
    reference_hash: str | None = None
    breach_count: int = 0
    clear_count: int = 0

    @property
    def labels(self) -> dict[str, str]:
        return {
            "alertname": self.alertname,
            "model_id": self.model_id,
            "slice": self.slice,
            "signal": self.signal,
            "feature": self.feature,
            "statistic": self.statistic,
        }


@dataclass(frozen=True, slots=True)
class Transition:
    """``alert`` is the state after the transition (``to_state == alert.state``)."""

    fingerprint: str
    from_state: State
    to_state: State
    at: float
    alert: AlertState


CUMULATIVE_STATISTICS = frozenset({"bar_evidence", "target_evidence", "accuracy_since_first"})
"""Statistics over every prediction since the model's first one, not a window: an alert's onset is then
the first counted prediction (``window_start``)."""

SEVERITY_RANK: Mapping[Severity | None, int] = {None: 0, "warning": 1, "critical": 2}


def _window_of(v: SignalValue, snapshot: Snapshot) -> tuple[float, float]:
    """The window the value is over: the snapshot's main window, or a shorter one ending with it."""
    if v.window_s is None:
        return snapshot.window_start, snapshot.window_end
    return snapshot.window_end - v.window_s, snapshot.window_end


@dataclass
class _Candidates:
    """What one evaluation's values say per alert fingerprint: its labels, rule and verdicts (one
    per window with enough samples), where its values first appear (the transitions' order), and
    every fingerprint any value spoke for."""

    entries: dict[str, tuple[dict[str, str], Rule, list[tuple[SignalValue, Severity | None]]]] = field(
        default_factory=dict)
    order: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)


class AlertEvaluator:
    """Applies the rules to each snapshot and moves alerts through their states.

    ``rules`` maps ``"<signal>.<statistic>"`` (the snapshot's signal, before the ``slice`` rename)
    to a :class:`Rule`. ``alpha`` is the significance level for adjusted p-values.
    """

    def __init__(
        self,
        rules: Mapping[str, Rule],
        promotion_watch_s: float = 3600.0,
        lineage_lookback_s: float = 3600.0,
        resolved_resend_s: float = 900.0,
        alpha: float = 0.01,
        target_quality: TargetQuality | None = None,
    ) -> None:
        if promotion_watch_s <= 0 or lineage_lookback_s <= 0 or resolved_resend_s < 0:
            raise ValueError("watch and lookback must be > 0, resolved_resend_s >= 0")
        if not 0 < alpha < 1:
            raise ValueError("alpha must be in (0, 1)")
        self.rules = dict(rules)
        # statistic -> signal -> rule: most values have no rule, and one dict miss on the
        # statistic rejects them without building a key
        self._by_statistic: dict[str, dict[str, Rule]] = {}
        for name, rule in self.rules.items():
            signal, statistic = name.split(".", 1)
            self._by_statistic.setdefault(statistic, {})[signal] = rule
        self.promotion_watch_s = promotion_watch_s
        self.lineage_lookback_s = lineage_lookback_s
        self.resolved_resend_s = resolved_resend_s
        self.alpha = alpha
        self.target_quality = target_quality
        self._states: dict[str, AlertState] = {}
        # (model, slice, signal, feature, statistic) -> (fingerprint, labels): a sha256 over JSON per
        # value and evaluation was a third of the evaluation's cost; bounded, cleared when full
        self._keys: dict[tuple[str, str, str, str, str], tuple[str, dict[str, str]]] = {}

    @property
    def states(self) -> Mapping[str, AlertState]:
        """Current pending, firing and recently resolved alerts by fingerprint (a copy)."""
        return dict(self._states)

    def restore(self, states: Iterable[AlertState]) -> None:
        """Load persisted states at start (pending, firing and resolved; inactive ones are ignored)."""
        for s in states:
            if s.state != "inactive":
                self._states[s.fingerprint] = s

    def forget(self, model_ids: Iterable[str]) -> int:
        """Drop the states of models this instance no longer owns (partitions revoked), without
        resolving them: the replica that takes the models over restores them from the store."""
        gone = set(model_ids)
        drop = [fp for fp, s in self._states.items() if s.model_id in gone]
        for fp in drop:
            del self._states[fp]
        return len(drop)

    def notifiable(self, now: float) -> list[AlertState]:
        """Alerts to send to Alertmanager: firing ones and those resolved within the resend period."""
        return [
            s
            for s in self._states.values()
            if s.state == "firing"
            or (s.state == "resolved" and s.resolved_at is not None and now - s.resolved_at <= self.resolved_resend_s)
        ]

    def evaluate(self, snapshot: Snapshot, promotions: Mapping[str, PromotionEvent], now: float) -> list[Transition]:
        """One evaluation at ``now``; returns the transitions it caused, in a stable order."""
        transitions: list[Transition] = []
        values = ValueSet.of(snapshot.values)
        accuracy = {
            (v.model_id, v.slice, v.statistic): v.value
            for _, v in values.scalars
            if v.signal == "quality" and v.statistic in ("accuracy", "accuracy_since_first") and v.sufficient
        }
        # one alert per (model, slice, signal, feature, statistic), whatever the windows: the
        # verdict of each window with enough samples; the most severe one speaks for the alert
        found = self._candidates(values)
        seen, candidates = found.seen, found.entries
        for fp in sorted(candidates, key=found.order.__getitem__):  # the values' order
            labels, rule, verdicts = candidates[fp]
            if not verdicts:
                continue  # no window with a verdict: neither hold nor clear progresses
            prev = self._states.get(fp)
            if len(verdicts) == 1:
                v, severity = verdicts[0]
                if severity is None and prev is None:
                    continue  # no breach and nothing to clear (as _no_breach would find)
            else:
                v, severity = max(verdicts, key=lambda vs: (SEVERITY_RANK[vs[1]], vs[0].window_s or 0.0))
            if severity is not None:
                t = self._breach(fp, labels, prev, v, rule, severity, snapshot, promotions, accuracy, now)
            elif prev is not None and prev.state == "firing" and any(rule.holds(x) for x, _ in verdicts):
                # hysteresis: beyond the clear threshold, a firing alert holds (no clear progress)
                self._states[fp] = replace(prev, value=v.value, sample_count=v.sample_count, clear_count=0,
                                           last_evaluated_at=now)
                t = None
            else:
                t = self._no_breach(fp, prev, rule, now, v, snapshot)
            if t is not None:
                transitions.append(t)
        present = {*snapshot.models, *snapshot.value_models()}
        for fp, prev in list(self._states.items()):
            if fp in seen or prev.model_id not in present:
                continue  # a model this evaluation knows nothing about is no verdict
            named = self.rules.get(f"{'quality' if prev.signal == 'slice' else prev.signal}.{prev.statistic}")
            t = self._no_breach(fp, prev, named, now)
            if t is not None:
                transitions.append(t)
        for fp, s in list(self._states.items()):
            if s.state == "resolved" and s.resolved_at is not None and now - s.resolved_at > self.resolved_resend_s:
                del self._states[fp]
        return transitions

    def _candidates(self, values: ValueSet) -> _Candidates:
        """The alerts the values speak for, with their verdicts."""
        found = _Candidates()
        by_statistic, alpha = self._by_statistic, self.alpha
        stated = {(st.model_id, st.slice, "quality" if st.signal == "slice" else st.signal, st.feature, st.statistic)
                  for st in self._states.values()}
        # a value that does not breach, of an alert without a state, changes nothing: only where the
        # alert's values first appear is kept (the transitions' order), and no value is counted
        skipped: dict[tuple[str, str, str, str, str], int] = {}
        for i, v in values.scalars:
            of_statistic = by_statistic.get(v.statistic)
            if of_statistic is None:
                continue
            rule = of_statistic.get(v.signal)
            if rule is None:
                continue
            key = (v.model_id, v.slice, v.signal, v.feature, v.statistic)
            if key not in stated and not (v.sufficient and v.sample_count >= rule.min_samples
                                          and rule.verdict(v, alpha) is not None):
                skipped.setdefault(key, i)
                continue
            self._consider(found, v, rule, (skipped.get(key, i), 0, 0))
        tables = values.tables
        if tables:
            self._table_candidates(found, values, tables)
        quantiles = values.quantile_tables
        if quantiles:
            self._quantile_candidates(found, values, quantiles)
        return found

    def _consider(self, found: _Candidates, v: SignalValue, rule: Rule, at: tuple[int, int, int]) -> None:
        """Count ``v`` (a value ``rule`` applies to, first met at ``at``) towards its alert."""
        keys = self._keys
        key = (v.model_id, v.slice, v.signal, v.feature, v.statistic)
        known = keys.get(key)
        if known is None:
            if len(keys) >= MAX_KEYS_CACHED:
                keys.clear()
            signal = alert_signal(v)
            labels = {
                "alertname": ALERTNAMES.get(signal, "SlicewatchDrift"),
                "model_id": v.model_id,
                "slice": v.slice,
                "signal": signal,
                "feature": v.feature,
                "statistic": v.statistic,
            }
            known = keys[key] = (fingerprint(labels), labels)
        fp, labels = known
        found.seen.add(fp)
        entry = found.entries.get(fp)
        if entry is None:  # not setdefault: its default (a dict copy) would be built for every value
            entry = found.entries[fp] = (dict(labels), rule, [])
            found.order[fp] = at
        elif at < found.order[fp]:
            found.order[fp] = at
        if v.sufficient and v.sample_count >= rule.min_samples:
            entry[2].append((v, rule.verdict(v, self.alpha)))

    def _table_candidates(self, found: _Candidates, values: ValueSet, tables: list[DistributionTable]) -> None:
        """The distribution values a rule applies to, read from the tables as arrays: only cells
        that breach the rule's warning threshold (with enough samples and, where tested,
        significance) or that belong to an alert with a state become values, and they go through
        :meth:`_consider` like any other value. A cell that does neither would change nothing."""
        at_item: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
        for i, x in enumerate(values.items):
            if isinstance(x, Segment):
                at_item.setdefault((id(x.table), x.row), []).append((x.start, x.stop, i))
        stated: dict[tuple[str, str, str], list[tuple[str, str]]] = {}
        for st in self._states.values():
            stated.setdefault((st.model_id, st.signal, st.statistic), []).append((st.slice, st.feature))
        for table in tables:
            signal_of = np.array(table.signals)
            for statistic in TABLE_STATISTICS:
                of_statistic = self._by_statistic.get(statistic)
                if of_statistic is None:
                    continue
                for signal, rule in of_statistic.items():
                    if signal not in ("input", "output"):
                        continue
                    emitted = table.emitted(statistic) & (signal_of == signal)
                    if not emitted.any():
                        continue
                    got, n = table.values_of(statistic), table.counts_of(statistic)
                    with np.errstate(invalid="ignore"):
                        beyond = got > rule.warning if rule.direction == "above" else got < rule.warning
                        cells = emitted & beyond & (n >= table.min_samples) & (n >= rule.min_samples)
                        if statistic not in MISSING_STATISTICS:
                            cells &= table.p_adjusted < self.alpha
                    picked = set(zip(*np.nonzero(cells), strict=True))
                    for sl, feature in stated.get((table.model_id, signal, statistic), ()):
                        blocks = [b for b, (f, s) in enumerate(zip(table.features, table.signals, strict=True))
                                  if f == feature and s == signal]
                        picked.update((r, b) for r, s in enumerate(table.slices) if s == sl
                                      for b in blocks if emitted[r, b])
                    rank = CELL_ORDER[statistic]
                    for r, b in sorted(picked):  # rows in the windows' order
                        first = min(
                            (i, int(b), rank)
                            for q, s in enumerate(table.slices) if s == table.slices[r] and emitted[q, b]
                            for start, stop, i in at_item[(id(table), q)] if start <= b < stop
                        )
                        self._consider(found, table.value(int(r), int(b), statistic), rule, first)

    def _quantile_candidates(self, found: _Candidates, values: ValueSet, tables: list[QuantileTable]) -> None:
        """The quantile values a rule applies to, read from the tables as arrays, as
        :meth:`_table_candidates` reads the distribution tables: only cells that breach the rule's
        warning threshold with enough samples, or that belong to an alert with a state, become
        values. A table row stands at one place of the values (the main window only)."""
        at_item = {(id(x.table), x.row): i for i, x in enumerate(values.items)
                   if isinstance(x, Segment) and isinstance(x.table, QuantileTable)}
        stated: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for st in self._states.values():
            if st.signal == "input":
                stated.setdefault((st.model_id, st.statistic), []).append((st.slice, st.feature))
        for table in tables:
            for rank, statistic in enumerate(QUANTILE_STATISTICS):
                rule = self._by_statistic.get(statistic, {}).get("input")
                if rule is None:
                    continue
                emitted = table.emitted(statistic)
                if not emitted.any():
                    continue
                got, n = table.values_of(statistic), table.counts
                with np.errstate(invalid="ignore"):
                    beyond = got > rule.warning if rule.direction == "above" else got < rule.warning
                cells = emitted & beyond & (n >= table.min_samples) & (n >= rule.min_samples)
                picked = set(zip(*np.nonzero(cells), strict=True))
                for sl, feature in stated.get((table.model_id, statistic), ()):
                    picked.update((r, c) for r, s in enumerate(table.slices) if s == sl
                                  for c, f in enumerate(table.features) if f == feature and emitted[r, c])
                for r, c in sorted(picked):
                    at = (at_item[(id(table), int(r))], int(c), rank)
                    self._consider(found, table.value(int(r), int(c), statistic), rule, at)

    def _breach(
        self,
        fp: str,
        labels: dict[str, str],
        prev: AlertState | None,
        v: SignalValue,
        rule: Rule,
        severity: str,
        snapshot: Snapshot,
        promotions: Mapping[str, PromotionEvent],
        accuracy: Mapping[tuple[str, str, str], float],
        now: float,
    ) -> Transition | None:
        measured = {
            "severity": severity,
            "value": v.value,
            "threshold": rule.threshold(severity),  # type: ignore[arg-type]
            "sample_count": v.sample_count,
            "window_start": _window_of(v, snapshot)[0],
            "window_end": snapshot.window_end,
            "reference_id": v.reference_id,
            "reference_hash": v.reference_hash,
            "last_evaluated_at": now,
            "clear_count": 0,
        }
        if prev is None or prev.state == "resolved":
            # evidence counted since the first prediction: the regression began with it, however
            # late its labels came (a rollback right after a promotion stays a rollback)
            cumulative = v.statistic in CUMULATIVE_STATISTICS
            decision = decide_action(
                model_id=v.model_id,
                slice=v.slice,
                signal=labels["signal"],
                onset=_window_of(v, snapshot)[0] if cumulative else now,
                promotion=promotions.get(v.model_id),
                lineage_changes=snapshot.lineage_changes,
                current_quality=accuracy.get(
                    (v.model_id, v.slice, "accuracy_since_first" if cumulative else "accuracy")
                ),
                target_quality=self.target_quality,
                promotion_watch_s=self.promotion_watch_s,
                lineage_lookback_s=self.lineage_lookback_s,
            )
            firing = rule.hold_evaluations <= 1
            new = AlertState(
                fingerprint=fp,
                alertname=labels["alertname"],
                model_id=v.model_id,
                slice=v.slice,
                signal=labels["signal"],
                feature=v.feature,
                statistic=v.statistic,
                state="firing" if firing else "pending",
                active_since=now,
                fired_at=now if firing else None,
                action=decision.action,
                actions=decision.actions,
                rollback_target=decision.rollback_target,
                suspected_causes=decision.suspected_causes,
                breach_count=1,
                **measured,  # type: ignore[arg-type]
            )
            self._states[fp] = new
            return Transition(fp, prev.state if prev else "inactive", new.state, now, new)
        count = prev.breach_count + 1
        if prev.state == "pending" and count >= rule.hold_evaluations:
            new = replace(prev, state="firing", fired_at=now, breach_count=count, **measured)  # type: ignore[arg-type]
            self._states[fp] = new
            return Transition(fp, "pending", "firing", now, new)
        self._states[fp] = replace(prev, breach_count=count, **measured)  # type: ignore[arg-type]
        return None

    def _no_breach(
        self,
        fp: str,
        prev: AlertState | None,
        rule: Rule | None,
        now: float,
        v: SignalValue | None = None,
        snapshot: Snapshot | None = None,
    ) -> Transition | None:
        if prev is None or prev.state == "resolved":
            return None
        if v is not None and snapshot is not None:
            prev = replace(
                prev,
                value=v.value,
                sample_count=v.sample_count,
                window_start=_window_of(v, snapshot)[0],
                window_end=snapshot.window_end,
            )
        if prev.state == "pending":
            del self._states[fp]
            gone = replace(prev, state="inactive", last_evaluated_at=now)
            return Transition(fp, "pending", "inactive", now, gone)
        clears = prev.clear_count + 1
        needed = rule.clear_evaluations if rule is not None else 1
        if clears >= needed:
            new = replace(prev, state="resolved", resolved_at=now, clear_count=clears, last_evaluated_at=now)
            self._states[fp] = new
            return Transition(fp, "firing", "resolved", now, new)
        self._states[fp] = replace(prev, clear_count=clears, last_evaluated_at=now)
        return None
