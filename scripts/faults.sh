#!/usr/bin/env bash
# `make faults`: the fault-injection suite (tests/faults, see its README) with 5 seeds per case and a
# 200,000-event backlog, then a summary table (case, seeds, passed, rows produced/lost/duplicated,
# worst SIGTERM exit time). Real consumer processes, PostgreSQL and Tansu on 127.0.0.1.
#   FAULT_SEEDS=2 FAULTS_BACKLOG=50000 scripts/faults.sh    # smaller run
#   scripts/faults.sh -k stale                              # extra arguments go to pytest
# Each test appends one JSON line to $FAULTS_REPORT (default: a new file in $TMPDIR); the table is
# printed and written next to it as .md. The exit status is pytest's.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/system-deps.sh
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || scripts/bootstrap.sh dev
export FAULT_SEEDS=${FAULT_SEEDS:-5}
export FAULTS_BACKLOG=${FAULTS_BACKLOG:-200000}
export FAULTS_REPORT=${FAULTS_REPORT:-${TMPDIR:-/tmp}/slicewatch-faults-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
: > "$FAULTS_REPORT"
echo "== fault suite: FAULT_SEEDS=$FAULT_SEEDS FAULTS_BACKLOG=$FAULTS_BACKLOG, figures in $FAULTS_REPORT"
status=0
"$VENV/bin/python" -m pytest tests/faults -m faults -p no:cacheprovider "$@" || status=$?
echo
"$VENV/bin/python" -m tests.faults.report "$FAULTS_REPORT" \
  --title "FAULT_SEEDS=$FAULT_SEEDS FAULTS_BACKLOG=$FAULTS_BACKLOG" | tee "${FAULTS_REPORT%.jsonl}.md"
exit "$status"
