"""Bulk SQL for the hot paths: imports of a million rows and the send ledger's claims.

SQLAlchemy converts every value of every row through its column type, and renders a long
IN list one bound parameter at a time; these helpers convert once and hand the driver
plain tuples, or pass a whole list as one parameter.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Table,
    any_,
    func,
    literal,
    literal_column,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite


def driver_sql(conn: Connection, sql: str) -> str:
    """SQL written with ? placeholders, in the driver's own style (psycopg wants %s).

    For the hot paths that hand plain tuples to the driver's executemany, skipping
    SQLAlchemy's conversion of every value.
    """
    return sql if conn.dialect.paramstyle == "qmark" else sql.replace("?", "%s")


# `column <IN_LIST>` with the list as one parameter (list_param): SQLite reads it from JSON,
# PostgreSQL takes an array. For SQL written out for driver_rows.
IN_LIST = {"sqlite": "IN (SELECT value FROM json_each(?))", "postgresql": "= ANY(?)"}


def list_param(conn: Connection, values: list[Any]) -> Any:
    """A list as the one parameter IN_LIST takes: JSON text for SQLite, the list itself
    (an array) for PostgreSQL."""
    return values if conn.dialect.name == "postgresql" else orjson.dumps(values).decode()


def driver_rows(conn: Connection, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """Run `sql` (? placeholders, see driver_sql) on the driver's own cursor, in this
    connection's transaction: the rows as the driver gives them.

    For the hot paths (the ledger's claim of every batch, one-click unsubscribes):
    SQLAlchemy's result object and the rendering of an expanding IN cost more than
    SQLite takes to run such a statement.
    """
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(driver_sql(conn, sql), params)
        return list(cursor.fetchall()) if cursor.description else []
    finally:
        cursor.close()


def bind(conn: Connection, column: Column[Any], value: Any) -> Any:
    """A value as the driver stores it in this column (a datetime as SQLite text...)."""
    convert = column.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    return convert(value) if convert is not None and value is not None else value


def in_list(conn: Connection, column: Any, values: list[Any]) -> ColumnElement[bool]:
    """`column IN values` with the values as one parameter.

    SQLAlchemy renders a long IN list one bound parameter at a time, which dominated an
    import's CPU; SQLite reads the list from JSON and PostgreSQL takes an array instead.
    """
    if conn.dialect.name == "postgresql":
        return column == any_(literal(values, postgresql.ARRAY(column.type)))  # type: ignore[no-any-return]
    listed: Any = select(literal_column("value")).select_from(func.json_each(json.dumps(values)))
    return column.in_(listed)  # type: ignore[no-any-return]


def bulk_insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """INSERT many rows through the driver's executemany, converting each column once.

    SQLAlchemy's executemany converts every value of every row through its type; an
    import inserts a million rows whose timestamps are all the same value, so here the
    conversion is done once for a shared value and the rows go to the driver as tuples.
    """
    if not rows:
        return
    names = list(rows[0])
    dialect = conn.dialect
    columns: list[list[Any]] = []
    for name in names:
        convert = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        values = [row[name] for row in rows]
        if convert is not None:
            first = values[0]
            if all(v is first for v in values):  # one timestamp shared by the whole chunk
                values = [convert(first) if first is not None else None] * len(values)
            else:
                values = [convert(v) if v is not None else None for v in values]
        columns.append(values)
    values = list(zip(*columns, strict=True))
    quote = dialect.identifier_preparer
    listed = ", ".join(quote.quote(n) for n in names)
    sql = (
        f"INSERT INTO {quote.format_table(table)} ({listed}) VALUES ({', '.join('?' * len(names))})"
    )
    conn.exec_driver_sql(driver_sql(conn, sql), values)


def insert_ignore(
    conn: Connection, table: Table, rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Insert rows whose key is not there yet; returns the ones that were new."""
    if not rows:
        return []
    keys = [c.name for c in table.primary_key.columns]
    present = set()
    if len(keys) == 2:
        first_key = keys[0]
        found = conn.execute(
            select(*(table.c[k] for k in keys)).where(
                in_list(conn, table.c[first_key], list({r[first_key] for r in rows}))
            )
        )
        present = {tuple(f) for f in found}
    fresh = [r for r in rows if tuple(r[k] for k in keys) not in present]
    if not fresh:
        return []
    dialect = conn.dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    conn.execute(module.insert(table).on_conflict_do_nothing(), fresh)
    return fresh
