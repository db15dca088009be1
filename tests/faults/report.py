"""Turn the fault suite's figures (one JSON line per test, see ``Figures``) into a markdown table.

    python -m tests.faults.report FIGURES.jsonl [--title TEXT]

One row per case, in the order the cases ran: seeds run, seeds passed (and expected failures of a
known defect, "xfail"), rows produced, rows lost and
rows duplicated (summed over the seeds; "duplicated" counts both duplicate rows and rows of request
ids never produced) and the worst SIGTERM exit time over every SIGTERM of every seed.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class CaseSummary:
    case: str
    seeds: int = 0
    passed: int = 0
    xfailed: int = 0
    produced: int = 0
    lost: int = 0
    duplicated: int = 0
    worst_sigterm_s: float | None = None

    def add(self, line: dict[str, Any]) -> None:
        self.seeds += 1
        self.passed += bool(line.get("passed"))
        self.xfailed += line.get("outcome") == "xfailed"
        self.produced += int(line.get("produced", 0))
        self.lost += int(line.get("lost", 0))
        self.duplicated += int(line.get("duplicated", 0)) + int(line.get("unexpected", 0))
        worst = line.get("worst_sigterm_exit_s")
        if worst is not None and (self.worst_sigterm_s is None or worst > self.worst_sigterm_s):
            self.worst_sigterm_s = float(worst)


def summarise(lines: list[dict[str, Any]]) -> list[CaseSummary]:
    cases: dict[str, CaseSummary] = {}
    for line in lines:
        cases.setdefault(line["case"], CaseSummary(line["case"])).add(line)
    return list(cases.values())


def table(rows: list[CaseSummary]) -> str:
    out = ["| case | seeds run | passed | rows produced | rows lost | rows duplicated | worst SIGTERM exit |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        worst = "-" if r.worst_sigterm_s is None else f"{r.worst_sigterm_s:.2f} s"
        passed = f"{r.passed} ({r.xfailed} xfail)" if r.xfailed else str(r.passed)
        out.append(f"| {r.case} | {r.seeds} | {passed} | {r.produced:,} | {r.lost:,} | {r.duplicated:,} | {worst} |")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="tests.faults.report")
    p.add_argument("figures", type=Path)
    p.add_argument("--title")
    args = p.parse_args(argv)
    text = args.figures.read_text() if args.figures.exists() else ""
    lines = [json.loads(x) for x in text.splitlines() if x.strip()]
    if args.title:
        print(f"Fault suite: {args.title}\n")
    print(table(summarise(lines)) if lines else "(no figures: did any fault test run?)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
