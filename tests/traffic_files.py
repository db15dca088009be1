"""Write the demo traffic generator's stream to event-contract files (JSONL or Parquet) for replay tests."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from monitor.demo.traffic import TrafficGenerator

START = 1_790_000_040.0  # a whole minute


def write_traffic(
    directory: Path, *, minutes: float, rate: float, seed: int = 11, fmt: str = "jsonl", incidents: bool = True,
) -> tuple[Path, Path, Path, TrafficGenerator]:
    gen = TrafficGenerator(
        seed=seed, start=START, events_per_s=rate, promote_at_s=minutes * 60 * 0.4,
        tail_drift_at_s=minutes * 60 * 0.3, template_change_at_s=minutes * 60 * 0.55,
        regression_points=0.12, incidents=incidents,
    )
    inference: list[dict] = []
    feedback: list[dict] = []
    promotions: list[dict] = []
    while gen.now < START + minutes * 60:
        step = gen.step(60.0)
        inference += step.inferences
        feedback += step.feedback
        promotions += step.promotions
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, rows in (("inference", inference), ("feedback", feedback), ("promotions", promotions)):
        if fmt == "parquet":
            path = directory / f"{name}.parquet"
            pl.DataFrame(rows, infer_schema_length=None).write_parquet(path)
        else:
            path = directory / f"{name}.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        paths.append(path)
    return paths[0], paths[1], paths[2], gen
