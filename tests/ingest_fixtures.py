"""Event factories and small helpers shared by the store and consumer tests."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import msgspec

from monitor.events import FeedbackEvent, InferenceEvent, PromotionEvent

BASE = 1_760_000_000.0


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat()


def inference_dict(i: int, model: str = "m-v1", served: float | None = None) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "request_id": f"r{i}",
        "model_id": model,
        "served_at": iso(served if served is not None else BASE + i),
        "input_features": {"age": 20 + i % 50, "country": ["de", "fr", "us"][i % 3], "vip": i % 2 == 0},
        "output": ["yes", "no"][i % 2],
        "confidence": (i % 100) / 100,
        "slice": {"tier": ["free", "pro"][i % 2]},
        "lineage": {"prompt_template_sha": "abc123"},
        "latency_ms": 12.5,
        "tokens_in": 10,
        "tokens_out": 3,
    }


def feedback_dict(i: int, observed: float, correct: bool = True, score: float | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {
        "schema_version": 1,
        "request_id": f"r{i}",
        "observed_at": iso(observed),
        "was_correct": correct,
        "source": "human",
    }
    if score is not None:
        d["score"] = score
    return d


def promotion_dict(model: str, at: float, rollback: str | None = None) -> dict[str, Any]:
    return {"schema_version": 1, "model_id": model, "promoted_at": iso(at), "rollback_target": rollback}


def raw(d: dict[str, Any]) -> bytes:
    return json.dumps(d).encode()


def inference(i: int, **kw: Any) -> InferenceEvent:
    return msgspec.convert(inference_dict(i, **kw), InferenceEvent)


def feedback(i: int, observed: float, correct: bool = True, score: float | None = None) -> FeedbackEvent:
    return msgspec.convert(feedback_dict(i, observed, correct, score), FeedbackEvent)


def promotion(model: str, at: float, rollback: str | None = None) -> PromotionEvent:
    return msgspec.convert(promotion_dict(model, at, rollback), PromotionEvent)
