#!/usr/bin/env bash
# Create the virtualenv from the lock file (uv.lock). Usage: scripts/bootstrap.sh [runtime|dev]
#   runtime  what `slicewatch demo` / `slicewatch run` need (make demo)
#   dev      plus the test, lint and plot extras (make test)
# uv itself is installed, at the pinned version below, from PyPI into .tools/ with the machine's pip.
# `uv sync --frozen` installs exactly the locked versions and never re-resolves; it is a no-op when
# the venv already matches. Managed Python downloads are off: the venv uses the machine's python3.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-dev}
UV_VERSION=0.13.9
TOOLS=${TOOLS:-.tools}
PYTHON=${PYTHON:-python3}
export UV_PROJECT_ENVIRONMENT=${VENV:-.venv}
export UV_PYTHON_DOWNLOADS=never
export UV_PYTHON=${UV_PYTHON:-$(command -v "$PYTHON")}
uv="$TOOLS/uv/bin/uv"
if [ ! -x "$uv" ] || [ "$("$uv" --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  echo "== installing uv $UV_VERSION into $TOOLS/uv"
  rm -rf "$TOOLS/uv"
  "$PYTHON" -m pip install --quiet --disable-pip-version-check --target "$TOOLS/uv" "uv==$UV_VERSION"
fi
case "$MODE" in
  runtime) extras=(--inexact) ;;                 # keep dev extras if a test run installed them
  dev) extras=(--extra dev --extra plot) ;;
  *) echo "usage: $0 [runtime|dev]" >&2; exit 2 ;;
esac
echo "== installing locked packages into $UV_PROJECT_ENVIRONMENT ($MODE)"
"$uv" sync --frozen "${extras[@]}"
