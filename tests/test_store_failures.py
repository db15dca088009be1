"""Every store entry point turns its failures into two classes (``monitor.store.failures``): an
outage (retry later: the pipeline keeps an evaluation's rows for the next save, the consumer pauses)
or a refusal (given up and logged). Before, some entry points caught only driver errors: a value
JSON cannot hold escaped as a bare ``StatementError`` (SQLite) or ``TypeError`` (PostgreSQL), and a
driver error that invalidated the connection, or a pool with no connection free in time, was taken
for a refusal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    StatementError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import QueuePool

from monitor.errors import StoreError, StoreUnavailable
from monitor.store import alerts as store
from monitor.store.base import metadata
from monitor.store.engine import make_engine
from monitor.store.evaluation import save_evaluation
from monitor.store.failures import UnencodableValue, store_error


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
        (DisconnectionError("gone"), True),
        (PoolTimeout("QueuePool limit of size 5 overflow 10 reached"), True),
        (UnencodableValue("Encoding objects of type Opaque is unsupported"), False),
    ],
)
def test_an_outage_is_told_from_a_refusal(error: Exception, outage: bool) -> None:
    got = store_error("saving x", error)  # type: ignore[arg-type]
    assert isinstance(got, StoreUnavailable) is outage and isinstance(got, StoreError)
    orig = getattr(error, "orig", None)
    expected = type(orig if orig is not None else error).__name__
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
    assert str(got.value) == "saving an evaluation's alerts failed (UnencodableValue)"
    event = {"event_id": "e1", "model_id": "m1", "state": "firing", "note": secret}  # through the evaluation's save
    with pytest.raises(StoreError) as again:
        save_evaluation(engine, [], [], [], [event], ["fp"], 1_000.0)
    assert str(again.value) == "saving an evaluation's alerts failed (UnencodableValue)"
    with engine.connect() as conn:  # nothing written, and the engine still works
        assert conn.execute(select(store.drift_event)).all() == []


def test_an_invalidated_connection_during_a_save_is_an_outage(engine: Engine) -> None:
    """A driver error SQLAlchemy marked as having invalidated the connection (its disconnect check)
    is an outage, whatever its class: the pipeline then keeps the evaluation's rows for the next save."""

    def lost(conn: object) -> None:
        raise InterfaceError("INSERT", None, Driver(), connection_invalidated=True)

    with pytest.raises(StoreUnavailable, match=r"database unavailable \(Driver\)"):
        store.in_transaction(engine, "saving an evaluation's alerts", lost)


@pytest.mark.integration
def test_a_connection_killed_by_the_server_is_an_outage(pg_url: str) -> None:
    """The server ends the backend in the middle of a save (``pg_terminate_backend``, as a restart or
    a failover does): psycopg's error on the dead connection is an outage, and the next save works."""
    engine = make_engine(pg_url)
    metadata.create_all(engine, tables=[store.drift_alert, store.drift_event])

    def killed(conn: Connection) -> None:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as other:
            other.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
        conn.exec_driver_sql("SELECT 1")

    with pytest.raises(StoreUnavailable, match=r"database unavailable"):
        store.in_transaction(engine, "saving an evaluation's alerts", killed)
    event = {"event_id": "e1", "model_id": "m1", "state": "firing"}
    assert save_evaluation(engine, [], [], [], [event], ["fp"], 1_000.0) == 1
    engine.dispose()


def test_an_exhausted_pool_is_an_outage(tmp_path: Path) -> None:
    """Every pooled connection held (a hung server holds them all) and none free within the pool's
    timeout: an outage, not a refusal that would give the evaluation's rows up."""
    engine = make_engine(f"sqlite:///{tmp_path / 'p.db'}", poolclass=QueuePool, pool_size=1, max_overflow=0,
                         pool_timeout=0.1)
    metadata.create_all(engine, tables=[store.drift_alert, store.drift_event])
    with engine.connect(), pytest.raises(StoreUnavailable, match=r"\(TimeoutError\)"):
        save_evaluation(engine, [], [], [], [{"event_id": "e1", "model_id": "m1", "state": "firing"}], ["fp"], 1.0)
    engine.dispose()
