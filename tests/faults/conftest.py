"""Fault suite options and fixtures.

``seed``: every fault test takes it; it runs over ``range(N)`` with N from ``--fault-seeds N`` or the
environment variable ``FAULT_SEEDS`` (default 1, so ``make test`` runs each case once).
``figures``: the test fills it; at teardown, when ``FAULTS_REPORT`` names a file, one JSON line with
the figures and the outcome is appended to it (``scripts/faults.sh`` turns those into a table).
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.embedded.postgres import PostgresServer
from tests.faults.harness import Figures


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fault-seeds", type=int, default=None,
                     help="run each fault case with seeds 0..N-1 (default: $FAULT_SEEDS or 1)")


def fault_seeds(config: pytest.Config) -> int:
    # The option exists only when this conftest is an initial one (pytest tests/faults ...); under a
    # plain `pytest` the environment variable is the knob.
    option = config.getoption("fault_seeds", default=None)
    return int(option if option is not None else os.environ.get("FAULT_SEEDS", "1"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "seed" in metafunc.fixturenames:
        metafunc.parametrize("seed", range(fault_seeds(metafunc.config)), ids=lambda s: f"seed{s}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[Any]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    outcome: str = report.outcome
    if hasattr(report, "wasxfail"):
        outcome = "xfailed" if report.skipped else "xpassed"
    item.stash.setdefault(_outcomes, {})[report.when] = outcome
    return report


_outcomes = pytest.StashKey[dict[str, str]]()


@pytest.fixture
def figures(request: pytest.FixtureRequest, seed: int) -> Iterator[Figures]:
    name = request.node.originalname
    fig = Figures(case=name.removeprefix("test_"), seed=seed)
    yield fig
    fig.outcome = request.node.stash.get(_outcomes, {}).get("call", "failed")
    fig.passed = fig.outcome == "passed"
    path = os.environ.get("FAULTS_REPORT")
    if path:
        fig.append_to(path)


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[PostgresServer]:
    """A PostgreSQL server of its own, for the cases that freeze it (SIGSTOP)."""
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.destroy()
