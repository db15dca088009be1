"""SQL helpers shared by the store's modules: ``IN`` lists of ids, chunking, the dialect's INSERT."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import ARRAY, Connection, String, Table, any_, bindparam
from sqlalchemy.dialects import postgresql, sqlite

from monitor.errors import StoreError

CHUNK = 5000  # ids per IN (...) list; below SQLite's and PostgreSQL's bind-parameter limits

T = TypeVar("T")


def in_ids(column: Any, ids: Sequence[str], dialect: str) -> Any:
    """``column IN ids``; on PostgreSQL ``= ANY(array)``, one parameter instead of thousands."""
    if dialect == "postgresql":
        return column == any_(bindparam(None, list(ids), type_=ARRAY(String), unique=True))
    return column.in_(list(ids))


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def insert(conn: Connection, table: Table) -> Any:
    """The dialect's INSERT (it has ``on_conflict_do_nothing``)."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise StoreError(f"unsupported database dialect {dialect!r}")
