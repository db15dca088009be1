"""Direct push of incidents to Alertmanager's v2 API (``POST /api/v2/alerts``), stdlib only.

One Alertmanager alert per incident (alertname ``SlicewatchIncident``), not per statistic: the
labels carry the ``incident_id``, the ``routing`` (``page`` for a rollback or a protected-slice
regression, ``ticket`` otherwise; ``deploy/alertmanager/alertmanager.yml`` routes on it), the
action and the rollback target, all fixed for the incident's life (a changed label would be a new
Alertmanager alert, a second page); the annotations the summary, the severity, the primary
signal and slice, the members and the ``runbook_url``. This push is the paging path; Prometheus' rules over
``slicewatch_incident_state`` only page when the push is failing
(``slicewatch_alertmanager_push_up == 0``) or not configured.

Open incidents are sent with ``endsAt = now + ttl_s`` (a few evaluation intervals), re-sent every
evaluation; if the monitor dies, Alertmanager resolves them by itself when ``endsAt`` passes.
Resolved incidents are sent with ``endsAt = resolved_at`` for the resend period.

Examples
--------
>>> sink = AlertmanagerSink("http://127.0.0.1:9093", ttl_s=60)
>>> sink.url
'http://127.0.0.1:9093/api/v2/alerts'
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import Any

from monitor.alerts.drift_event import iso
from monitor.alerts.errors import PublishError
from monitor.alerts.incidents import Incident, routing
from monitor.alerts.runbooks import runbook_url

ALERTNAME = "SlicewatchIncident"


class AlertmanagerSink:
    def __init__(self, url: str, ttl_s: float = 60.0, timeout_s: float = 5.0, generator_url: str = "",
                 runbook_base: str = "") -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be > 0")
        base = url.rstrip("/")
        self.url = base if base.endswith("/api/v2/alerts") else f"{base}/api/v2/alerts"
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self.generator_url = generator_url
        self.runbook_base = runbook_base

    def payload(self, incidents: Iterable[Incident], now: float) -> list[dict[str, Any]]:
        out = []
        for inc in incidents:
            p = inc.primary
            ends = inc.resolved_at if inc.state == "resolved" and inc.resolved_at is not None else now + self.ttl_s
            # labels stay fixed for the incident's life (a changed label is a new Alertmanager alert,
            # i.e. a second page): what changes (severity, primary member, value) is an annotation
            labels = {
                "alertname": ALERTNAME, "model_id": inc.model_id, "incident_id": inc.incident_id,
                "routing": routing(inc), "action": inc.action,
            }
            if inc.rollback_target:
                labels["rollback_target"] = inc.rollback_target
            members = ", ".join(f"{m.signal}/{m.slice}/{m.feature}/{m.statistic}" for m in inc.members)
            todo = f"roll back to {inc.rollback_target}" if inc.rollback_target else inc.action
            item: dict[str, Any] = {
                "labels": labels,
                "annotations": {
                    "summary": f"{inc.model_id}: {p.signal} {p.statistic} on {p.slice} ({p.feature}) is "
                    f"{p.value:.4g}, threshold {p.threshold:.4g}; {todo}",
                    "members": members,
                    "drift_severity": inc.severity,
                    "signal": p.signal,
                    "slice": p.slice,
                    "actions": ",".join(inc.actions),
                    "onset": iso(inc.onset) or "",
                    "runbook_url": runbook_url(p.signal, inc.action, self.runbook_base),
                },
                "startsAt": iso(inc.opened_at),
                "endsAt": iso(ends),
            }
            if self.generator_url:
                item["generatorURL"] = self.generator_url
            out.append(item)
        return out

    def push(self, incidents: Iterable[Incident], now: float) -> int:
        """POST the incidents (open and recently resolved); returns how many were sent."""
        body = self.payload(incidents, now)
        if not body:
            return 0
        request = urllib.request.Request(
            self.url,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                response.read()
        except (urllib.error.URLError, OSError) as e:
            status = getattr(e, "code", None)
            reason = f"{type(e).__name__} {status or ''}".strip()
            raise PublishError(f"Alertmanager push to {self.url} failed ({reason})") from e
        return len(body)
