"""Every store entry point turns SQLAlchemy's failures into two classes (``monitor.store.failures``):
an outage (retry later: the pipeline keeps an evaluation's rows for the next save) or a refusal (given
up and logged). Before, some entry points caught only driver errors: a value SQLAlchemy could not bind
escaped as a bare ``StatementError``, and a driver error that invalidated the connection was taken for
a refusal, so an evaluation's rows were given up during an outage."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError, StatementError

from monitor.errors import StoreError, StoreUnavailable
from monitor.store import alerts as store
from monitor.store.base import metadata
from monitor.store.engine import make_engine
from monitor.store.evaluation import save_evaluation
from monitor.store.failures import store_error


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'f.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    eng = make_engine(url)
    metadata.create_all(eng, tables=[store.drift_alert, store.drift_event])
    yield eng
    eng.dispose()


class Opaque:
    def __repr__(self) -> str:
        return "do-not-log-me"


class Driver(Exception):
    """A driver exception (what psycopg or sqlite3 would raise)."""


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (OperationalError("SELECT 1", None, Driver()), True),
        (InterfaceError("SELECT 1", None, Driver(), connection_invalidated=True), True),
        (DBAPIError("SELECT 1", None, Driver(), connection_invalidated=True), True),
        (InterfaceError("SELECT 1", None, Driver()), False),
        (IntegrityError("INSERT", None, Driver()), False),
        (StatementError("bind failed", "INSERT", None, TypeError("no")), False),
    ],
)
def test_an_outage_is_told_from_a_refusal(error: Exception, outage: bool) -> None:
    got = store_error("saving x", error)  # type: ignore[arg-type]
    assert isinstance(got, StoreUnavailable) is outage and isinstance(got, StoreError)
    expected = "TypeError" if isinstance(error, StatementError) and not isinstance(error, DBAPIError) else "Driver"
    assert str(got).startswith("saving x failed") and str(got).endswith(f"({expected})")


def test_a_value_that_cannot_be_bound_is_a_refusal(engine: Engine) -> None:
    """A JSON column given a value JSON cannot hold: SQLAlchemy's bind step fails before the driver
    sees anything."""
    secret = Opaque()
    with pytest.raises(StoreError) as got:
        store.in_transaction(engine, "saving an evaluation's alerts",
                             lambda conn: conn.execute(store.drift_alert.insert(),
                                                       {"fingerprint": "f", "labels": secret}))
    assert not isinstance(got.value, StoreUnavailable)
    assert str(got.value) == "saving an evaluation's alerts failed (TypeError)"
    event = {"event_id": "e1", "model_id": "m1", "state": "firing", "note": secret}  # through the evaluation's save
    with pytest.raises(StoreError) as again:
        save_evaluation(engine, [], [], [], [event], ["fp"], 1_000.0)
    assert str(again.value) == "saving an evaluation's alerts failed (TypeError)"
    with engine.connect() as conn:  # nothing written, and the engine still works
        assert conn.execute(select(store.drift_event)).all() == []


def test_a_lost_connection_during_a_save_is_an_outage(engine: Engine) -> None:
    """A driver error that invalidated the connection (psycopg's ``InterfaceError`` on a dropped
    socket) is an outage: the pipeline then keeps the evaluation's rows for the next save."""

    def lost(conn: object) -> None:
        raise InterfaceError("INSERT", None, Driver(), connection_invalidated=True)

    with pytest.raises(StoreUnavailable, match=r"database unavailable \(Driver\)"):
        store.in_transaction(engine, "saving an evaluation's alerts", lost)
