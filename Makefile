# The two commands a fresh machine needs (see README):
#   make demo   end-to-end demo on embedded defaults (Tansu broker, SQLite)
#   make test   lint, types and the full test suite against real PostgreSQL, Tansu, Prometheus, Alertmanager
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test venv lint bench faults deps-newest lock clean image

venv:
	@scripts/bootstrap.sh dev

demo:
	@scripts/bootstrap.sh runtime
	$(VENV)/bin/slicewatch demo

test:
	@scripts/test.sh

lint: venv
	$(VENV)/bin/ruff check monitor tests benchmarks scripts
	$(VENV)/bin/mypy

bench: venv
	$(PY) benchmarks/ingest.py
	$(PY) benchmarks/stats.py

# fault-injection suite (tests/faults): SIGKILL/SIGTERM/SIGSTOP, rebalances, a hung PostgreSQL;
# 5 seeds per case, 200,000-event backlog, then a summary table (FAULT_SEEDS / FAULTS_BACKLOG override)
faults:
	@scripts/faults.sh

# the container image (Dockerfile) with podman, from a local debootstrap base: localhost/slicewatch:<version>
image:
	@scripts/image.sh

# the newest versions pyproject.toml allows, unit tests against them (a CI step; reports, never hides)
deps-newest:
	@scripts/deps-newest.sh

# re-resolve uv.lock after a change to pyproject.toml (say why in the commit)
lock:
	@scripts/bootstrap.sh dev >/dev/null && .tools/uv/bin/uv lock

clean:
	rm -rf $(VENV) .tools .deps-newest .pytest_cache .mypy_cache .ruff_cache
