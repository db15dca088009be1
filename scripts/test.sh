#!/usr/bin/env bash
# The README's test command (`make test`): installs what the tests need, then lint, types, tests.
# The tests start their own PostgreSQL server, Tansu broker, Prometheus and Alertmanager on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/system-deps.sh
scripts/bootstrap.sh dev
VENV=${VENV:-.venv}
echo "== ruff"; "$VENV/bin/ruff" check monitor tests benchmarks scripts
echo "== mypy"; "$VENV/bin/mypy"
echo "== pytest"
"$VENV/bin/python" -m pytest "$@"
