"""Migrations 0003_alerts and 0005_incidents create exactly the drift_alert / drift_event /
drift_incident tables the code declares."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from monitor.store import alerts as store
from monitor.store import incidents as incident_store
from monitor.store.engine import make_engine
from monitor.store.migrate import upgrade


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def test_migration_matches_tables(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            assert "0003_alerts" in ctx.get_current_heads() or ctx.get_current_revision() is not None
            diffs = [
                d
                for d in compare_metadata(ctx, store.drift_alert.metadata)
                if _table_of(d) in ("drift_alert", "drift_event", "drift_incident")
            ]
        assert diffs == []
        # the tables work after migration
        assert store.unpublished_events(engine) == []
        assert store.load_alert_states(engine, 0.0, 900.0) == []
        assert incident_store.load_incidents(engine, 0.0, 900.0) == []
    finally:
        engine.dispose()


def _table_of(diff: object) -> str | None:
    item = diff[0] if isinstance(diff, list) else diff
    for part in item if isinstance(item, tuple) else ():
        name = getattr(part, "name", None)
        table = getattr(part, "table", None)
        if table is not None and getattr(table, "name", None):
            return str(table.name)
        if isinstance(part, str) and part in ("drift_alert", "drift_event", "drift_incident"):
            return part
        if name in ("drift_alert", "drift_event", "drift_incident"):
            return str(name)
    return None
