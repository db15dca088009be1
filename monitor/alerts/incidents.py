"""Incidents: the alerts of one model that start close together and share a cause, as one unit.

One regression moves many statistics (every feature x statistic x slice that it touches); on-call
wants one page that says what broke, since when, how bad and what to do, and that stays true until
the problem is gone. The tracker is fed the alert evaluator's transitions after every evaluation:

* an alert that fires joins an open incident of its model when it shares a cause with it (the same
  slice, the same feature, the same promotion -- both within the promotion watch of the model's
  promotion -- or the same lineage change) and fired within ``group_s`` of the incident's latest
  member; an alert that shares the incident's promotion or lineage change joins it whenever it
  fires while the incident is open. Otherwise it opens a new incident. Alerts of a resolved
  incident that fire again open a new one.
* the **primary** member is the most telling one: quality on a protected slice outranks quality,
  which outranks output, then input (then cohort and label coverage); ties go to the more severe,
  then the earlier one.
* the **severity** is the maximum its members reached; it never goes down during the incident's life.
* the **action** is decided when the incident opens (its first alert's decision) and holds for its
  whole life; it is only ever raised to ``rollback`` (with the target) when a member that says
  rollback joins, never lowered, also when members resolve and fire again.
* an incident resolves when every member alert has resolved (each after its rule's clear period).

Each change is an :class:`IncidentTransition`: ``opened``, ``escalated`` (warning -> critical),
``updated`` (members joined; at most one per evaluation) and ``resolved``. Ids are derived from the
content, so a replay gives the same ids. Pure: the time is an argument.

Examples
--------
>>> from monitor.alerts.state import AlertState, Transition
>>> def alert(fp, signal, slice_, feature, severity, at, state="firing"):
...     a = AlertState(fp, "A", "m", slice_, signal, feature, "psi", state, severity, at, at, 0.3, 0.2, 500,
...                    at - 3600, at, action="retrain", actions=("retrain",), fired_at=at)
...     return Transition(fp, "pending", state, at, a)
>>> tracker = IncidentTracker(group_s=1800)
>>> [t.kind for t in tracker.update([alert("a", "input", "all", "x", "warning", 100.0)], 100.0)]
['opened']
>>> [t.kind for t in tracker.update([alert("b", "output", "all", "output", "critical", 400.0)], 400.0)]
['updated', 'escalated']
>>> inc = tracker.open_incidents[0]
>>> inc.primary.signal, inc.severity, len(inc.members), inc.action
('output', 'critical', 2, 'retrain')
>>> [t.kind for t in tracker.update([alert("a", "input", "all", "x", "warning", 900.0, "resolved")], 900.0)]
[]
>>> [t.kind for t in tracker.update([alert("b", "output", "all", "output", "critical", 960.0, "resolved")], 960.0)]
['resolved']
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from monitor.alerts.state import AlertState, Transition
from monitor.events import PromotionEvent
from monitor.snapshot import LineageChange

IncidentKind = Literal["opened", "escalated", "updated", "resolved"]

SIGNAL_RANK = {"slice": 5, "quality": 4, "output": 3, "input": 2, "cohort": 1, "label_coverage": 0}
ACTION_RANK = {"investigate": 0, "retrain": 1, "rollback": 2}
ROOT_CAUSES = ("promotion:", "lineage:")
"""Causes that hold an incident together for its whole life, however far apart its alerts fire."""


@dataclass(frozen=True, slots=True)
class Member:
    """One alert of an incident, as it was last seen."""

    fingerprint: str
    signal: str
    slice: str
    feature: str
    statistic: str
    state: str  # firing | resolved
    severity: str
    value: float
    threshold: float
    fired_at: float
    alert: AlertState

    @classmethod
    def of(cls, a: AlertState) -> Member:
        fired = a.fired_at if a.fired_at is not None else a.active_since
        return cls(a.fingerprint, a.signal, a.slice, a.feature, a.statistic, a.state, a.severity, a.value,
                   a.threshold, fired, a)


def _severity(severity: str | None) -> int:
    return {"warning": 1, "critical": 2}.get(severity or "", 0)


def _rank(m: Member) -> tuple[int, int, float]:
    return SIGNAL_RANK.get(m.signal, 0), _severity(m.severity), -m.fired_at


@dataclass(frozen=True, slots=True)
class Incident:
    incident_id: str
    model_id: str
    state: Literal["open", "resolved"]
    opened_at: float
    onset: float  # the earliest window start of its members when they fired
    severity: str
    members: tuple[Member, ...]
    action: str
    actions: tuple[str, ...]
    rollback_target: str | None
    suspected_causes: tuple[LineageChange, ...]
    causes: frozenset[str]
    updated_at: float
    resolved_at: float | None = None
    events: int = 0  # transitions emitted so far (part of each event's id)

    @property
    def primary(self) -> Member:
        return max(self.members, key=_rank)

    def member(self, fingerprint: str) -> Member | None:
        return next((m for m in self.members if m.fingerprint == fingerprint), None)


def routing(inc: Incident) -> str:
    """``"page"`` for an incident on-call must act on now -- a rollback, or a quality regression on
    a protected slice -- else ``"ticket"`` (retrain, investigate). The Alertmanager routing keys on it."""
    return "page" if inc.action == "rollback" or inc.primary.signal == "slice" else "ticket"


@dataclass(frozen=True, slots=True)
class IncidentTransition:
    kind: IncidentKind
    at: float
    incident: Incident  # the incident after the change

    @property
    def event_id(self) -> str:
        key = f"{self.incident.incident_id}|{self.kind}|{self.incident.events}"
        return hashlib.sha256(key.encode()).hexdigest()[:32]


def cause_keys(a: AlertState, promotion: PromotionEvent | None, promotion_watch_s: float) -> frozenset[str]:
    """What an alert may share with others: its slice, its feature, the promotion whose watch holds
    its onset, the lineage changes suspected for it."""
    family = "quality" if a.signal == "slice" else a.signal
    keys = {f"slice:{a.slice}", f"feature:{family}:{a.feature}"}
    if promotion is not None:
        at, fired = promotion.promoted_at.timestamp(), a.fired_at or a.active_since
        if at <= fired <= at + promotion_watch_s or at <= a.window_start <= at + promotion_watch_s:
            keys.add(f"promotion:{at!r}")
    keys.update(f"lineage:{c.field}:{c.to_value}" for c in a.suspected_causes)
    return frozenset(keys)


class IncidentTracker:
    """Open incidents by model, fed with the alert evaluator's transitions (see the module doc)."""

    def __init__(self, group_s: float = 1800.0, promotion_watch_s: float = 3600.0,
                 resolved_keep_s: float = 900.0) -> None:
        if group_s <= 0 or promotion_watch_s <= 0 or resolved_keep_s < 0:
            raise ValueError("group_s and promotion_watch_s must be > 0, resolved_keep_s >= 0")
        self.group_s = float(group_s)
        self.promotion_watch_s = float(promotion_watch_s)
        self.resolved_keep_s = float(resolved_keep_s)
        self._incidents: dict[str, Incident] = {}
        self._of_alert: dict[str, str] = {}  # alert fingerprint -> its open incident

    @property
    def incidents(self) -> list[Incident]:
        """Open incidents and those resolved within ``resolved_keep_s``, oldest first."""
        return sorted(self._incidents.values(), key=lambda i: (i.opened_at, i.incident_id))

    @property
    def open_incidents(self) -> list[Incident]:
        return [i for i in self.incidents if i.state == "open"]

    def notifiable(self, now: float) -> list[Incident]:
        """Incidents to send to Alertmanager: open ones and those resolved within ``resolved_keep_s``."""
        return [i for i in self.incidents if i.state == "open" or
                (i.resolved_at is not None and now - i.resolved_at <= self.resolved_keep_s)]

    def restore(self, incidents: Iterable[Incident]) -> None:
        for inc in incidents:
            self._incidents[inc.incident_id] = inc
            if inc.state == "open":
                for m in inc.members:
                    self._of_alert[m.fingerprint] = inc.incident_id

    def forget(self, model_ids: Iterable[str]) -> None:
        """Drop the incidents of models this replica no longer owns (the next owner restores them)."""
        gone = set(model_ids)
        for iid in [i for i, inc in self._incidents.items() if inc.model_id in gone]:
            del self._incidents[iid]
        self._of_alert = {fp: i for fp, i in self._of_alert.items() if i in self._incidents}

    def update(self, transitions: Sequence[Transition], now: float, *,
               states: Mapping[str, AlertState] | None = None,
               promotions: Mapping[str, PromotionEvent] | None = None) -> list[IncidentTransition]:
        """Apply one evaluation's alert transitions (and the alerts' current ``states``: a firing
        alert's severity changes without a transition); returns the incidents' transitions in order."""
        promotions = promotions or {}
        out: list[IncidentTransition] = []
        joined: dict[str, Incident] = {}  # incidents that gained members in this evaluation
        before = {iid: inc.severity for iid, inc in self._incidents.items()}
        for fp, a in (states or {}).items():
            iid = self._of_alert.get(fp)
            if iid is not None and a.state == "firing":
                self._set_member(iid, Member.of(a), now)
        for t in transitions:
            if t.to_state == "firing":
                iid = self._of_alert.get(t.fingerprint)
                if iid is not None:  # a member fires again: its incident stays what it was
                    self._set_member(iid, Member.of(t.alert), now)
                    continue
                inc = self._join(t.alert, promotions.get(t.alert.model_id), now)
                if inc is None:
                    opened = self._open(t.alert, promotions.get(t.alert.model_id), now)
                    out.append(self._emit(opened, "opened", now))
                    before[opened.incident_id] = opened.severity
                else:
                    joined[inc.incident_id] = inc
            elif t.to_state == "resolved":
                iid = self._of_alert.get(t.fingerprint)
                if iid is not None:
                    self._set_member(iid, Member.of(t.alert), now)
        for iid in joined:
            out.append(self._emit(self._incidents[iid], "updated", now))
        for iid, inc in list(self._incidents.items()):
            if inc.state == "open" and iid in before and _severity(inc.severity) > _severity(before[iid]):
                out.append(self._emit(inc, "escalated", now))
        for iid, inc in list(self._incidents.items()):
            if inc.state == "open" and all(m.state == "resolved" for m in inc.members):
                done = replace(inc, state="resolved", resolved_at=now, updated_at=now)
                self._incidents[iid] = done
                for m in inc.members:
                    self._of_alert.pop(m.fingerprint, None)
                out.append(self._emit(done, "resolved", now))
        for iid, inc in list(self._incidents.items()):
            if inc.state == "resolved" and inc.resolved_at is not None and now - inc.resolved_at > self.resolved_keep_s:
                del self._incidents[iid]
        return out

    def _emit(self, inc: Incident, kind: IncidentKind, now: float) -> IncidentTransition:
        counted = replace(self._incidents[inc.incident_id], events=self._incidents[inc.incident_id].events + 1)
        self._incidents[inc.incident_id] = counted
        return IncidentTransition(kind, now, replace(counted, events=counted.events - 1))

    def _set_member(self, iid: str, m: Member, now: float) -> None:
        inc = self._incidents[iid]
        members = tuple(m if x.fingerprint == m.fingerprint else x for x in inc.members)
        severity = max(inc.severity, m.severity, key=_severity)
        self._incidents[iid] = replace(inc, members=members, severity=severity, updated_at=now)

    def _join(self, a: AlertState, promotion: PromotionEvent | None, now: float) -> Incident | None:
        keys = cause_keys(a, promotion, self.promotion_watch_s)
        fired = a.fired_at if a.fired_at is not None else now
        for inc in self.open_incidents:
            shared = keys & inc.causes
            if inc.model_id != a.model_id or not shared:
                continue
            recent = fired - max(m.fired_at for m in inc.members) <= self.group_s
            if not recent and not any(k.startswith(ROOT_CAUSES) for k in shared):
                continue
            m = Member.of(a)
            action, actions, target = inc.action, inc.actions, inc.rollback_target
            if ACTION_RANK.get(a.action, 0) > ACTION_RANK.get(action, 0) and a.action == "rollback":
                action, target = "rollback", a.rollback_target  # raised, never lowered
                actions = ("rollback", *(x for x in actions if x != "rollback"))
            actions = tuple(dict.fromkeys([*actions, *a.actions]))
            causes = tuple(sorted({*inc.suspected_causes, *a.suspected_causes}, key=lambda c: (c.first_seen, c.field)))
            severity = max(inc.severity, a.severity, key=_severity)
            joined = replace(inc, members=(*inc.members, m), severity=severity, action=action, actions=actions,
                             rollback_target=target, suspected_causes=causes, causes=inc.causes | keys,
                             onset=min(inc.onset, a.window_start), updated_at=now)
            self._incidents[inc.incident_id] = joined
            self._of_alert[a.fingerprint] = inc.incident_id
            return joined
        return None

    def _open(self, a: AlertState, promotion: PromotionEvent | None, now: float) -> Incident:
        opened = a.fired_at if a.fired_at is not None else now
        iid = "inc-" + hashlib.sha256(f"{a.model_id}|{a.fingerprint}|{opened!r}".encode()).hexdigest()[:24]
        inc = Incident(
            incident_id=iid, model_id=a.model_id, state="open", opened_at=opened, onset=a.window_start,
            severity=a.severity, members=(Member.of(a),), action=a.action, actions=a.actions or (a.action,),
            rollback_target=a.rollback_target, suspected_causes=a.suspected_causes,
            causes=cause_keys(a, promotion, self.promotion_watch_s), updated_at=now,
        )
        self._incidents[iid] = inc
        self._of_alert[a.fingerprint] = iid
        return inc
