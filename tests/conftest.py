"""Shared fixtures: a real PostgreSQL server and a real Tansu broker on 127.0.0.1, one per session.

Tests that need a fresh database take ``pg_url`` (a new database per test, on the shared server);
tests that need the broker take ``broker`` and create uniquely named topics.
"""

from __future__ import annotations

import gc
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from monitor.embedded.postgres import PostgresServer
from monitor.embedded.tansu import TansuBroker
from monitor.store.engine import make_engine
from monitor.store.repository import Repository
from tests.ingest_fixtures import create_ingest_schema


@pytest.fixture(autouse=True)
def python_gc() -> Iterator[None]:
    """Python's collector as it was before each test: a test that runs ``slicewatch run`` or
    ``replay`` in-process gets the command's ``tune_gc`` (frozen start-up, a higher threshold)."""
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> str:
    """A fresh, empty database on the shared server; returns its SQLAlchemy URL."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(
        host="127.0.0.1", port=pg_server.port, user="slicewatch", dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://slicewatch@127.0.0.1:{pg_server.port}/{name}"


@pytest.fixture
def repo(pg_url: str) -> Iterator[Repository]:
    """The ingestion tables in a fresh database, behind a Repository (a test module may override it)."""
    create_ingest_schema(pg_url)
    engine = make_engine(pg_url)
    yield Repository(engine)
    engine.dispose()


@pytest.fixture(scope="session")
def broker() -> Iterator[TansuBroker]:
    with TansuBroker() as b:
        yield b


@pytest.fixture
def topic_prefix() -> str:
    """Unique topic-name prefix so tests sharing the broker never see each other's messages."""
    return f"t{uuid.uuid4().hex[:8]}"
