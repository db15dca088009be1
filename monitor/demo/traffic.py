"""A seeded, realistic multi-model inference stream with scripted incidents.

Pure: no I/O and no clock reads. Event time starts at ``start`` and advances by ``step_s`` per
:meth:`TrafficGenerator.step`; each step returns the inference, feedback and promotion events whose
event time (``served_at``, ``observed_at``, ``promoted_at``) falls inside it, as wire-format dicts
(the event contract of ``schemas/``). Columns are drawn with numpy per step; only the final dicts
are built per event.

Scripted incidents (times relative to ``start``):

1. ``promotion_regression``: ``intent-clf@v42`` is promoted over ``intent-clf@v41``
   (rollback target) at ``promote_at_s``; it is 8 points worse on ``domain=regulatory``
   (about 8% of traffic) and unchanged elsewhere, so the aggregate moves less than 1 point.
2. ``tokens_tail_drift``: from ``tail_drift_at_s`` the ``tokens_in`` tail of ``summarizer@2026-11``
   grows steadily (log-normal sigma rises), a slow input drift.
3. ``template_change``: at ``template_change_at_s`` ``router@v7``'s ``prompt_template_sha`` changes
   and its predicted-class distribution shifts with it.

Examples:
    >>> gen = TrafficGenerator(seed=1, start=1_700_000_000.0, events_per_s=2.0)
    >>> step = gen.step(60.0)
    >>> len(step.inferences) > 0 and step.inferences[0]["schema_version"] == 1
    True
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

LANGUAGES = np.array(["en", "es", "ja", "de", "fr"])
LANGUAGE_P = np.array([0.55, 0.20, 0.10, 0.08, 0.07])
DOMAINS = np.array(["general", "support", "billing", "regulatory"])
DOMAIN_P = np.array([0.50, 0.25, 0.17, 0.08])
TIERS = np.array(["free", "pro", "enterprise"])
TIER_P = np.array([0.6, 0.3, 0.1])
REGIONS = np.array(["eu", "us", "apac"])
REGION_P = np.array([0.4, 0.45, 0.15])
CLASSES = np.array(["billing", "technical", "account", "complaint", "other"])
CLASS_P = np.array([0.30, 0.25, 0.20, 0.15, 0.10])
CLASS_P_SHIFTED = np.array([0.12, 0.18, 0.20, 0.35, 0.15])

INTENT_OLD = "intent-clf@v41"
INTENT_NEW = "intent-clf@v42"
SUMMARIZER = "summarizer@2026-11"
ROUTER = "router@v7"
JUDGE_MODEL = "judge-llm@2026-10"


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds")


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class Incident:
    """A scripted incident: what the demo summary checks the monitor detected."""

    name: str
    model_id: str
    starts_at: float
    signal: str
    action: str
    description: str


@dataclass(slots=True)
class TrafficStep:
    start: float
    end: float
    inferences: list[dict[str, Any]] = field(default_factory=list)
    feedback: list[dict[str, Any]] = field(default_factory=list)
    promotions: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class _Model:
    model_id: str
    share: float
    accuracy: float
    active_from: float
    active_until: float = float("inf")


class TrafficGenerator:
    """Seeded traffic for three model families with the three scripted incidents.

    ``events_per_s`` is the total inference rate in event time; ``label_fraction_judge`` of the
    requests get a judge label 30 s to 3 min later, ``label_fraction_human`` a human label 5 to
    15 min later (a request may get both; the later one wins in the store).
    """

    def __init__(
        self,
        seed: int,
        start: float,
        events_per_s: float = 30.0,
        promote_at_s: float = 40 * 60.0,
        tail_drift_at_s: float = 30 * 60.0,
        template_change_at_s: float = 60 * 60.0,
        regression_points: float = 0.08,
        label_fraction_judge: float = 0.7,
        label_fraction_human: float = 0.1,
        incidents: bool = True,
    ) -> None:
        if events_per_s <= 0:
            raise ValueError("events_per_s must be > 0")
        self.seed = seed
        self.start = start
        self.events_per_s = events_per_s
        self.promote_at = start + promote_at_s
        self.tail_drift_at = start + tail_drift_at_s
        self.template_change_at = start + template_change_at_s
        self.regression_points = regression_points
        self.label_fraction_judge = label_fraction_judge
        self.label_fraction_human = label_fraction_human
        self.with_incidents = incidents
        self._rng = np.random.default_rng(seed)
        self._now = start
        self._seq = 0
        self._pending: list[tuple[float, dict[str, Any]]] = []
        self._promotions: list[dict[str, Any]] = [
            {"schema_version": 1, "model_id": INTENT_OLD, "promoted_at": rfc3339(start),
             "rollback_target": "intent-clf@v40", "alias": "intent-clf@prod", "traffic_fraction": 1.0},
            {"schema_version": 1, "model_id": SUMMARIZER, "promoted_at": rfc3339(start),
             "rollback_target": None, "alias": "summarizer@prod", "traffic_fraction": 1.0},
            {"schema_version": 1, "model_id": ROUTER, "promoted_at": rfc3339(start),
             "rollback_target": "router@v6", "alias": "router@prod", "traffic_fraction": 1.0},
        ]
        if incidents:
            self._promotions.append(
                {"schema_version": 1, "model_id": INTENT_NEW, "promoted_at": rfc3339(self.promote_at),
                 "rollback_target": INTENT_OLD, "alias": "intent-clf@prod", "traffic_fraction": 1.0}
            )
        self._promotion_times = [start, start, start] + ([self.promote_at] if incidents else [])

    @property
    def now(self) -> float:
        return self._now

    @property
    def incidents(self) -> list[Incident]:
        if not self.with_incidents:
            return []
        return [
            Incident("promotion_regression", INTENT_NEW, self.promote_at, "slice", "rollback",
                     f"{INTENT_NEW} promoted over {INTENT_OLD}: -{self.regression_points * 100:.0f} pts "
                     "accuracy on domain=regulatory"),
            Incident("tokens_tail_drift", SUMMARIZER, self.tail_drift_at, "input", "retrain",
                     "tokens_in tail grows slowly"),
            Incident("template_change", ROUTER, self.template_change_at, "output", "investigate",
                     "prompt_template_sha change with an output-distribution shift"),
        ]

    def _models(self, t: float) -> list[_Model]:
        intent = INTENT_NEW if self.with_incidents and t >= self.promote_at else INTENT_OLD
        return [_Model(intent, 0.6, 0.91, self.start), _Model(SUMMARIZER, 0.2, 0.88, self.start),
                _Model(ROUTER, 0.2, 0.90, self.start)]

    def step(self, step_s: float) -> TrafficStep:
        """Advance event time by ``step_s`` and return everything that happened in it."""
        t0, t1 = self._now, self._now + step_s
        out = TrafficStep(t0, t1)
        for ts, promo in zip(self._promotion_times, self._promotions, strict=True):
            if t0 <= ts < t1:
                out.promotions.append(promo)
        rng = self._rng
        n = int(rng.poisson(self.events_per_s * step_s))
        served = np.sort(rng.uniform(t0, t1, n))
        mid = (t0 + t1) / 2
        models = self._models(mid)
        which = rng.choice(len(models), size=n, p=np.array([m.share for m in models]))
        lang = rng.choice(LANGUAGES, size=n, p=LANGUAGE_P)
        domain = rng.choice(DOMAINS, size=n, p=DOMAIN_P)
        tier = rng.choice(TIERS, size=n, p=TIER_P)
        region = rng.choice(REGIONS, size=n, p=REGION_P)
        arm = np.where(rng.random(n) < 0.5, "control", "treatment")
        sigma = np.full(n, 0.6)
        if self.with_incidents and mid > self.tail_drift_at:
            growth = (mid - self.tail_drift_at) / 3600.0  # +0.5 sigma per hour of drift
            sigma = np.where(which == 1, 0.6 + 0.5 * growth, 0.6)
        tokens_in = np.maximum(1, rng.lognormal(6.0, sigma)).astype(np.int64)
        tokens_out = np.maximum(1, rng.lognormal(4.5, 0.4, n)).astype(np.int64)
        retrieval = rng.beta(5, 2, n)
        toxicity = rng.beta(1, 30, n)
        attachment = rng.random(n) < 0.15
        latency = rng.gamma(4.0, 60.0, n)
        shifted = self.with_incidents and mid >= self.template_change_at
        cls_p = np.where((which == 2)[:, None] & shifted, CLASS_P_SHIFTED, CLASS_P)
        cls_idx = (rng.random(n)[:, None] > np.cumsum(cls_p, axis=1)).sum(axis=1).clip(0, len(CLASSES) - 1)
        confidence = rng.beta(8, 2, n)
        acc = np.array([m.accuracy for m in models])[which]
        if self.with_incidents:
            regressed = np.array([m.model_id == INTENT_NEW for m in models])[which] & (domain == "regulatory")
            acc = np.where(regressed, acc - self.regression_points, acc)
        correct = rng.random(n) < acc
        judge = rng.random(n) < self.label_fraction_judge
        judge_delay = rng.uniform(30, 180, n)
        judge_agrees = rng.random(n) < 0.97
        human = rng.random(n) < self.label_fraction_human
        human_delay = rng.uniform(300, 900, n)
        template_new = _sha("router-template-v2")
        for i in range(n):
            self._seq += 1
            m = models[which[i]]
            rid = f"req-{self.seed}-{self._seq:09d}"
            template = template_new if (m.model_id == ROUTER and shifted) else _sha(f"{m.model_id}-tmpl")
            event = {
                "schema_version": 1,
                "request_id": rid,
                "model_id": m.model_id,
                "served_at": rfc3339(float(served[i])),
                "input_features": {
                    "language": str(lang[i]),
                    "domain": str(domain[i]),
                    "customer_tier": str(tier[i]),
                    "tokens_in": int(tokens_in[i]),
                    "retrieval_score": round(float(retrieval[i]), 4),
                    "toxicity_score": round(float(toxicity[i]), 5),
                    "has_attachment": bool(attachment[i]),
                },
                "output": str(CLASSES[cls_idx[i]]),
                "confidence": round(float(confidence[i]), 4),
                "slice": {"region": str(region[i]), "experiment_arm": str(arm[i])},
                "lineage": {
                    "prompt_template_sha": template if m.model_id == ROUTER else _sha(f"{m.model_id}-tmpl"),
                    "preprocessing_ref": "prep@3",
                    "embedding_model": "embed-small@2",
                    "dataset_version": "ds-2026-10",
                },
                "latency_ms": round(float(latency[i]), 1),
                "tokens_in": int(tokens_in[i]),
                "tokens_out": int(tokens_out[i]),
            }
            out.inferences.append(event)
            if judge[i]:
                due = float(served[i] + judge_delay[i])
                was = bool(correct[i]) if judge_agrees[i] else not bool(correct[i])
                self._pending.append((due, {
                    "schema_version": 1, "request_id": rid, "observed_at": rfc3339(due),
                    "was_correct": was, "source": "judge", "judge_model": JUDGE_MODEL,
                    "rubric_version": "rubric-3",
                }))
            if human[i]:
                due = float(served[i] + human_delay[i])
                self._pending.append((due, {
                    "schema_version": 1, "request_id": rid, "observed_at": rfc3339(due),
                    "was_correct": bool(correct[i]), "source": "human",
                }))
        self._pending.sort(key=lambda p: p[0])
        cut = 0
        while cut < len(self._pending) and self._pending[cut][0] < t1:
            cut += 1
        out.feedback = [p[1] for p in self._pending[:cut]]
        del self._pending[:cut]
        self._now = t1
        return out
