"""The drift events of ``slicewatch replay`` on the demo traffic, normalized for comparison.

A refactor that must not change behaviour (issue 9) runs this before and after and diffs the
outputs. The traffic is the demo's generator with its scripted incidents (seeded), written to JSONL
files; the replay runs with default settings plus the demo's protected slices.

    .venv/bin/python scripts/replay_fingerprint.py OUT.jsonl [--minutes 240] [--rate 4]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from monitor.app import replay as run_replay
from monitor.config import Settings
from monitor.demo.traffic import TrafficGenerator

START = 1_790_000_040.0  # a whole minute


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--minutes", type=float, default=240.0)
    ap.add_argument("--rate", type=float, default=4.0)
    args = ap.parse_args(argv)
    m = args.minutes * 60
    gen = TrafficGenerator(seed=11, start=START, events_per_s=args.rate, promote_at_s=m * 0.4,
                           tail_drift_at_s=m * 0.3, template_change_at_s=m * 0.55, regression_points=0.12)
    streams: dict[str, list[dict]] = {"inference": [], "feedback": [], "promotions": []}
    while gen.now < START + m:
        step = gen.step(60.0)
        streams["inference"] += step.inferences
        streams["feedback"] += step.feedback
        streams["promotions"] += step.promotions
    settings = Settings.model_validate({"stats": {"protected_slices": {"language": ["es", "ja"],
                                                                       "domain": ["regulatory"]}}})
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for name, rows in streams.items():
            paths[name] = Path(tmp) / f"{name}.jsonl"
            paths[name].write_text("".join(json.dumps(r) + "\n" for r in rows))
        raw = Path(tmp) / "drift.jsonl"
        summary = run_replay(settings, paths["inference"], paths["feedback"], paths["promotions"], raw)
        events = [json.loads(line) for line in raw.read_text().splitlines()]
    args.out.write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in events))
    print(f"{len(streams['inference'])} inferences, {summary.evaluations} evaluations, {len(events)} drift events "
          f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
