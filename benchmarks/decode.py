"""Decoding throughput: ``monitor.ingest.decoder.decode`` vs plain ``json.loads`` on the same bytes,
and the columnar alternatives (a poll's 500 records in one msgspec call, or in polars'
``read_ndjson``; both without our validation, so upper bounds of what they could give).

Two realistic inference streams, encoded once: the demo traffic generator's events (~600 bytes,
7 features) and LLM-style events (~2.5 kB: 40 features, a 1,500-character non-ASCII generated
answer). Each round times the decoder (full validation, typed ``InferenceEvent``), msgspec's typed
decode alone (no post-validation, for the overhead) and ``json.loads`` (the baseline: parsing
only, no validation) over every event, alternating the three every 500 events so that they share
the same machine load; the median of ``--repeat`` rounds is printed with the ratio decoder /
json.loads.

    .venv/bin/python -m benchmarks.decode --events 20000 --repeat 5
"""

from __future__ import annotations

import argparse
import io
import json
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import msgspec
import polars as pl

from monitor.demo.traffic import TrafficGenerator
from monitor.events import InferenceEvent
from monitor.ingest.decoder import decode

MAX_BYTES = 1 << 20
WORDS = [
    "le",
    "modèle",
    "a",
    "répondu",
    "sur",
    "la",
    "facture",
    "de",
    "mars",
    "と",
    "請求書",
    "über",
    "die",
    "Rechnung",
]


def demo_events(n: int, seed: int) -> list[bytes]:
    gen = TrafficGenerator(seed=seed, start=1_795_000_000.0, events_per_s=50.0)
    out: list[bytes] = []
    while len(out) < n:
        out += [json.dumps(e).encode() for e in gen.step(600.0).inferences]
    return out[:n]


def llm_events(n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        features: dict[str, Any] = {f"emb_{j}": rng.gauss(0.0, 1.0) for j in range(30)}
        features |= {f"cat_{j}": rng.choice(["a", "bb", "ccc", "dddd"]) for j in range(6)}
        features |= {"n_turns": rng.randint(1, 40), "has_tool_call": rng.random() < 0.2, "locale": None}
        features["prompt_chars"] = rng.randint(50, 8000)
        event = {
            "schema_version": 1,
            "request_id": f"req-{seed}-{i:012d}",
            "model_id": "assistant-llm@2026-11-03",
            "served_at": f"2026-11-22T10:{i // 60 % 60:02d}:{i % 60:02d}.{i % 1000:03d}Z",
            "input_features": features,
            "output": " ".join(rng.choice(WORDS) for _ in range(300))[:1500],
            "confidence": rng.random(),
            "slice": {"tier": "enterprise", "region": "eu", "arm": "B"},
            "lineage": {"prompt_template_sha": "9f2c1a0b", "retrieval_index_ref": "idx@41", "dataset_version": "ds-7"},
            "latency_ms": rng.uniform(50, 5000),
            "tokens_in": rng.randint(10, 4000),
            "tokens_out": rng.randint(10, 1000),
        }
        out.append(json.dumps(event, ensure_ascii=False).encode())
    return out


def each(fn: Callable[[bytes], object]) -> Callable[[list[bytes]], object]:
    """A per-event function applied to every event of a chunk."""

    def run(part: list[bytes]) -> None:
        for raw in part:
            fn(raw)

    return run


def one_round(fns: dict[str, Callable[[list[bytes]], object]], raws: list[bytes], chunk: int = 500) -> dict[str, float]:
    """Events/s of each function over all events, alternating functions every ``chunk`` events so
    that all of them see the same load on a shared machine (a chunk is what one poll gives a
    partition: the columnar alternatives get it whole, the others event by event)."""
    spent = dict.fromkeys(fns, 0.0)
    for lo in range(0, len(raws), chunk):
        part = raws[lo : lo + chunk]
        for key, fn in fns.items():
            start = time.perf_counter()
            fn(part)
            spent[key] += time.perf_counter() - start
    return {key: len(raws) / t for key, t in spent.items()}


def run(name: str, raws: list[bytes], repeat: int) -> None:
    typed = msgspec.json.Decoder(InferenceEvent)
    typed_list = msgspec.json.Decoder(list[InferenceEvent])
    fns: dict[str, Callable[[list[bytes]], object]] = {
        "decoder": each(lambda raw: decode("inference", raw, MAX_BYTES)),
        "msgspec typed only": each(typed.decode),
        # the columnar alternatives of issue 12, on a poll's 500 records at once, without validation
        "msgspec list, 1 call": lambda part: typed_list.decode(b"[" + b",".join(part) + b"]"),
        "polars read_ndjson": lambda part: pl.read_ndjson(io.BytesIO(b"\n".join(part))),
        "json.loads": each(json.loads),
    }
    for raw in raws:  # every event must be valid, or the figures would time the failure path
        decode("inference", raw, MAX_BYTES)
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for key, value in one_round(fns, raws).items():
            samples[key].append(value)
    med = {k: statistics.median(v) for k, v in samples.items()}
    size = statistics.mean(len(r) for r in raws)
    print(f"\n{name}: {len(raws)} events, mean {size:.0f} bytes, median of {repeat}")
    for key, value in med.items():
        print(f"  {key:<20} {value:>12,.0f} events/s  {1e6 / value:6.2f} us/event")
    print(f"  ratio decoder / json.loads: {med['decoder'] / med['json.loads']:.2f}")
    print(f"  ratio polars read_ndjson / decoder: {med['polars read_ndjson'] / med['decoder']:.2f}, "
          f"msgspec list / msgspec typed: {med['msgspec list, 1 call'] / med['msgspec typed only']:.2f}")
    print(f"  post-validation overhead vs msgspec typed only: {med['msgspec typed only'] / med['decoder'] - 1:.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    run("demo traffic (TrafficGenerator)", demo_events(args.events, args.seed), args.repeat)
    run("LLM-style events", llm_events(args.events, args.seed), args.repeat)


if __name__ == "__main__":
    main()
