# The two commands a fresh machine needs (see README):
#   make demo   end-to-end demo on embedded defaults (Tansu broker, SQLite)
#   make test   lint, types and the full test suite against real PostgreSQL, Tansu, Prometheus, Alertmanager
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test venv lint bench clean

venv:
	@scripts/bootstrap.sh

demo: venv
	$(VENV)/bin/slicewatch demo

test:
	@scripts/test.sh

lint: venv
	$(VENV)/bin/ruff check monitor tests benchmarks scripts
	$(VENV)/bin/mypy

bench: venv
	$(PY) benchmarks/ingest.py
	$(PY) benchmarks/stats.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
