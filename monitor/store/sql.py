"""SQL helpers shared by the store's modules: ``IN`` lists of ids, chunking, the dialect's INSERT."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import msgspec
from sqlalchemy import JSON, Connection, String, Table, bindparam, cast, func, literal_column, select
from sqlalchemy.dialects import postgresql, sqlite

from monitor.errors import StoreError

CHUNK = 5000  # ids per IN (...) list; below SQLite's and PostgreSQL's bind-parameter limits

T = TypeVar("T")


def in_ids(column: Any, ids: Sequence[str], dialect: str) -> Any:
    """``column IN ids``, the ids bound as one JSON array (:func:`ids_json`) that the server unpacks
    (PostgreSQL's ``json_array_elements_text``, SQLite's ``json_each``): msgspec encodes 5,000 ids
    in C, where the driver's ``text[]`` adaptation cost 1.6 us of Python per id
    (``benchmarks/README.md``), and an ``IN`` of one parameter per id is a new statement for each
    count. On SQLite ids with a NUL character are listed (:func:`listed`)."""
    if listed(ids, dialect):
        return column.in_(list(ids))
    return column.in_(_unpacked(bindparam(None, ids_json(ids), type_=String, unique=True), dialect))


def in_ids_param(column: Any, dialect: str, *, as_list: bool = False) -> Any:
    """``column IN`` the ids bound at execution as the parameter ``ids``: :func:`ids_json` of them,
    or the list itself with ``as_list`` (see :func:`ids_param`). A statement built once with it is
    compiled once, where one built per call with :func:`in_ids` costs SQLAlchemy ~100 us of
    construction, caching and parameter expansion each time."""
    if as_list:
        return column.in_(bindparam("ids", expanding=True))
    return column.in_(_unpacked(bindparam("ids", type_=String), dialect))


def listed(ids: Sequence[str], dialect: str) -> bool:
    """The ids must be bound one parameter each: SQLite's ``json_each`` ends a text at a NUL
    character, so such an id would match nothing (PostgreSQL's text holds no NUL at all)."""
    return dialect == "sqlite" and "\x00" in "".join(ids)


def ids_param(ids: Sequence[str], dialect: str) -> tuple[bool, dict[str, Any]]:
    """``(as_list, parameters)`` of a statement built with :func:`in_ids_param` for ``ids``."""
    if listed(ids, dialect):
        return True, {"ids": list(ids)}
    return False, {"ids": ids_json(ids)}


def _unpacked(param: Any, dialect: str) -> Any:
    if dialect == "postgresql":
        return select(func.json_array_elements_text(cast(param, JSON)))
    return select(literal_column("value")).select_from(func.json_each(param))


def ids_json(ids: Sequence[str]) -> str:
    """The ids as one JSON array (the PostgreSQL form of :func:`in_ids`'s parameter)."""
    return msgspec.json.encode(list(ids)).decode()


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
