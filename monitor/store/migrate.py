"""Apply the Alembic migrations shipped inside the package (used by ``slicewatch db upgrade``).

No ``alembic.ini`` is needed: the Config is built here, ``script_location`` is the package folder.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.exc import DBAPIError, OperationalError

from monitor.errors import StoreError, StoreUnavailable

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    """An in-memory Alembic Config pointing at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Upgrade the database at ``url`` to ``revision`` (default: the newest)."""
    try:
        command.upgrade(alembic_config(url), revision)
    except OperationalError as e:
        raise StoreUnavailable(f"migration failed: database unavailable ({type(e.orig).__name__})") from e
    except DBAPIError as e:
        raise StoreError(f"migration failed ({type(e.orig).__name__})") from e


def head() -> str:
    """The newest revision this version ships."""
    from alembic.script import ScriptDirectory

    rev = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert rev is not None
    return rev


def require_current(url: str) -> None:
    """Refuse a database that is not at this version's newest revision (``StoreError`` naming both
    and the command that migrates): ``slicewatch run`` migrates only with ``--migrate``, so replicas,
    the systemd unit's ``ExecStartPre`` and the Kubernetes init container never race each other."""
    try:
        at = current(url)
    except OperationalError as e:
        why = type(e.orig).__name__
        raise StoreUnavailable(f"cannot read the schema revision: database unavailable ({why})") from e
    want = head()
    if at != want:
        raise StoreError(
            f"the database schema is at revision {at or 'none (empty database)'}, this version needs {want}: "
            "run `slicewatch db upgrade --config FILE` (or start once with `slicewatch run --migrate`)"
        )


def current(url: str) -> str | None:
    """The revision the database is at, or None before the first migration."""
    from alembic.runtime.migration import MigrationContext

    from monitor.store.engine import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
