"""Alembic environment, configured in code by :func:`monitor.store.migrate.upgrade` (no alembic.ini).

The URL comes from the Config's ``sqlalchemy.url`` main option or an injected ``connection``
attribute; it is never logged.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from monitor.store.base import metadata
from monitor.store.engine import make_engine

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    injected = config.attributes.get("connection")
    if injected is not None:
        _run(injected)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported")
run_migrations_online()
