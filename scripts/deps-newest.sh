#!/usr/bin/env bash
# Resolve the newest versions pyproject.toml allows (ignoring uv.lock), install them into a separate
# venv and run the unit tests (no servers) there. Reports what differs from the lock and what breaks;
# exits 0 either way unless STRICT=1, so an upstream release never blocks a landing silently or loudly:
# the report is printed in CI and written to .deps-newest/report.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/system-deps.sh
scripts/bootstrap.sh dev >/dev/null
uv=.tools/uv/bin/uv
out=.deps-newest
rm -rf "$out" && mkdir -p "$out"
export UV_PYTHON_DOWNLOADS=never
echo "== resolving the newest allowed versions"
if ! "$uv" pip compile --quiet --python "$(command -v python3)" --upgrade --extra dev --extra plot \
    pyproject.toml -o "$out/requirements.txt"; then
  echo "DEPS-NEWEST: resolution FAILED"; [ "${STRICT:-0}" = 1 ] && exit 1; exit 0
fi
# versions that differ from the lock
.venv/bin/python - "$out/requirements.txt" > "$out/report.txt" <<'PY'
import re, sys, tomllib
locked: dict[str, set[str]] = {}  # a package can be locked at one version per Python range
for p in tomllib.load(open("uv.lock", "rb"))["package"]:
    locked.setdefault(p["name"], set()).add(p["version"])
newer = []
for line in open(sys.argv[1]):
    m = re.match(r"^([A-Za-z0-9_.-]+)==([^\s;]+)", line)
    if m:
        name = m[1].lower().replace("_", "-")
        if name in locked and m[2] not in locked[name]:
            newer.append(f"{name}: lock {', '.join(sorted(locked[name]))} -> newest {m[2]}")
print("\n".join(newer) if newer else "the lock already has the newest allowed versions")
PY
cat "$out/report.txt"
"$uv" venv --quiet --python "$(command -v python3)" "$out/venv"
VIRTUAL_ENV="$out/venv" "$uv" pip install --quiet -r "$out/requirements.txt" && \
  VIRTUAL_ENV="$out/venv" "$uv" pip install --quiet --no-deps -e .
echo "== unit tests on the newest versions"
"$out/venv/bin/python" -m pytest -q -p no:cacheprovider -m "not integration and not e2e and not slow" \
  tests > "$out/pytest.txt" 2>&1
rc=$?
tail -n 15 "$out/pytest.txt"
if [ $rc -ne 0 ]; then
  echo "DEPS-NEWEST: tests FAIL on the newest allowed versions (see above and $out/pytest.txt)"
  [ "${STRICT:-0}" = 1 ] && exit 1
else
  echo "DEPS-NEWEST: tests pass on the newest allowed versions"
fi
exit 0
