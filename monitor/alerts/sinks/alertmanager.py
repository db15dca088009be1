"""Direct push of alert states to Alertmanager's v2 API (``POST /api/v2/alerts``), stdlib only.

Firing alerts are sent with ``endsAt = now + ttl_s`` (a few evaluation intervals), re-sent every
evaluation; if the monitor dies, Alertmanager resolves them by itself when ``endsAt`` passes.
Resolved alerts are sent with ``endsAt = resolved_at`` for the resend period.

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
from monitor.alerts.state import AlertState


class AlertmanagerSink:
    def __init__(self, url: str, ttl_s: float = 60.0, timeout_s: float = 5.0, generator_url: str = "") -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be > 0")
        base = url.rstrip("/")
        self.url = base if base.endswith("/api/v2/alerts") else f"{base}/api/v2/alerts"
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self.generator_url = generator_url

    def payload(self, alerts: Iterable[AlertState], now: float) -> list[dict[str, Any]]:
        out = []
        for a in alerts:
            ends = a.resolved_at if a.state == "resolved" and a.resolved_at is not None else now + self.ttl_s
            labels = {**a.labels, "severity": a.severity, "action": a.action}
            if a.rollback_target:
                labels["rollback_target"] = a.rollback_target
            item: dict[str, Any] = {
                "labels": labels,
                "annotations": {
                    "summary": f"{a.signal} {a.statistic} on {a.model_id} ({a.slice}) is {a.value:.4g}, "
                    f"threshold {a.threshold:.4g}",
                    "value": f"{a.value:.6g}",
                    "threshold": f"{a.threshold:.6g}",
                    "actions": ",".join(a.actions),
                },
                "startsAt": iso(a.fired_at if a.fired_at is not None else a.active_since),
                "endsAt": iso(ends),
            }
            if self.generator_url:
                item["generatorURL"] = self.generator_url
            out.append(item)
        return out

    def push(self, alerts: Iterable[AlertState], now: float) -> int:
        """POST the alerts (firing and recently resolved); returns how many were sent."""
        body = self.payload(alerts, now)
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
            raise PublishError(f"Alertmanager push failed ({type(e).__name__} {status or ''})".strip()) from e
        return len(body)
