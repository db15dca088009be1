"""Engine factory: pool pre-ping everywhere, WAL and a busy timeout on SQLite, msgspec for JSON."""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url

from monitor.store.failures import UnencodableValue

_encoder = msgspec.json.Encoder()


def _dumps(value: Any) -> str:
    try:
        return _encoder.encode(value).decode()
    except TypeError as e:  # msgspec names the type it cannot encode, never the value
        raise UnencodableValue(str(e)) from None


def make_engine(
    url: str, *, connect_timeout_s: int = 5, statement_timeout_s: float = 30.0, throwaway: bool = False, **kwargs: Any
) -> Engine:
    """Create the engine for ``url`` (PostgreSQL via psycopg 3, or SQLite for the embedded default).

    On PostgreSQL every session gets ``statement_timeout`` and ``lock_timeout``, and a connection
    attempt gives up after ``connect_timeout_s``, so a slow or locked server turns into a retryable
    error instead of a stuck writer. (A server that is stopped mid-statement cannot enforce its own
    timeout: the consumer watches the write's duration itself, see ``monitor.ingest.consumer``.)

    ``throwaway``: a SQLite file that is deleted when the command ends (``slicewatch replay``'s)
    is written without syncing (``synchronous=OFF``); a crash loses nothing that outlives it.

    Examples:
        >>> make_engine("sqlite://").dialect.name
        'sqlite'
    """
    options: dict[str, Any] = {
        "pool_pre_ping": True,
        "hide_parameters": True,  # driver errors must never echo row contents
        "json_serializer": _dumps,
        "json_deserializer": msgspec.json.decode,
    }
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        options["connect_args"] = {"timeout": 30}
    elif backend == "postgresql":
        ms = max(1, int(statement_timeout_s * 1000))
        options["connect_args"] = {
            "connect_timeout": connect_timeout_s,  # an unreachable or hung host must not hang a retry
            "options": f"-c statement_timeout={ms} -c lock_timeout={ms}",
        }
        options["pool_timeout"] = connect_timeout_s
    options.update(kwargs)
    engine = create_engine(url, **options)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_throwaway_pragmas if throwaway else _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, synchronous: str = "NORMAL") -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute(f"PRAGMA synchronous={synchronous}")
    cursor.close()


def _sqlite_throwaway_pragmas(dbapi_connection: Any, _record: Any) -> None:
    _sqlite_pragmas(dbapi_connection, _record, "OFF")


def database_problem(db: Engine) -> str | None:
    """``SELECT 1`` on a pooled connection: None when the database answers, else a short reason
    (the exception type, never the URL or the driver's message, which can name hosts and users).

    Examples:
        >>> database_problem(create_engine("sqlite://")) is None
        True
    """
    try:
        with db.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as e:
        return f"database unreachable ({type(e).__name__})"
    return None
