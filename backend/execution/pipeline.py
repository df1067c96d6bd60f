"""Several reads in one round trip (psycopg pipeline mode), for the first reads of a hot transaction.

On the loopback a round trip costs more than the work of a small query, and
psycopg opens each transaction with a ``BEGIN`` round trip of its own.  In
pipeline mode the ``BEGIN`` and the reads travel together and the answers
come back together; the server still runs them one after the other, each
with its own snapshot (READ COMMITTED), so a read placed after a ``FOR
UPDATE`` sees everything committed before that lock was granted.

SQLAlchemy cannot read results in pipeline mode, so these statements go to
the driver connection under the caller's SQLAlchemy transaction (which then
commits or rolls them back as usual); their text is written for Postgres
(``= ANY(%(ids)s)`` with array parameters, constant whatever the number of
ids) and their rows are plain tuples with psycopg's types, timestamps turned
to UTC like ``UTCDateTime`` does.  Other databases and drivers get ``None``
and take the SQLAlchemy path, and so does everything when the environment
variable ``DTE_NO_PIPELINE`` is set (a measuring aid).  ``sent`` and
``listeners`` are for the benchmarks' counters (SQLAlchemy's events do not
see these statements).

``commit`` sends a transaction's last write and its ``COMMIT`` in one round
trip: the same COMMIT, answered by the server only once it is durable (with
``synchronous_commit`` as the transaction left it), so nothing about
durability changes; the write just does not wait alone for its answer first.
If the write fails, the server skips the COMMIT and the transaction is left
failed for the caller to roll back, as after any failed statement.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import timezone
from typing import Any

import psycopg
import sqlalchemy as sa

sent = 0
listeners: list = []  # callables(conn, statements, committed=False) told of each pipeline round trip
_OFF = bool(os.environ.get("DTE_NO_PIPELINE"))


def available(conn: sa.Connection) -> bool:
    return not _OFF and conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg"


def read(conn: sa.Connection, statements: Sequence[tuple[str, dict[str, Any]]]) -> list[list[tuple]] | None:
    """Run ``statements`` (driver syntax) in one round trip; their rows, or None where unsupported.

    A failing statement raises ``sqlalchemy.exc.DBAPIError`` (``IntegrityError`` ...), as SQLAlchemy would.
    """
    global sent
    if not available(conn):
        return None
    if not conn.in_transaction():
        conn.begin()  # so that SQLAlchemy commits (or rolls back) what these statements did
    raw = conn.connection.driver_connection
    cursors = []
    try:
        with raw.pipeline():
            for sql, params in statements:
                cursor = raw.cursor()
                cursor.execute(sql, params)
                cursors.append(cursor)
    except psycopg.Error as exc:
        raise _wrapped(conn, statements, exc) from exc
    sent += len(statements)
    for listener in listeners:
        listener(conn, len(statements))
    return [_utc_rows(cursor) for cursor in cursors]


def commit(conn: sa.Connection, statements: Sequence[tuple[str, dict[str, Any]]]) -> list[list[tuple]] | None:
    """Send ``statements`` (driver syntax) and COMMIT in one round trip; their rows, as ``read`` gives them.

    Returns None, having sent nothing, where unsupported or outside a transaction: the caller then
    runs them and commits the usual way.  Otherwise the database transaction is over; the caller
    still ends its SQLAlchemy transaction (``Session.commit``), which finds nothing left to send.  A
    failing statement raises ``sqlalchemy.exc.DBAPIError`` (as SQLAlchemy's own execution would) with
    nothing committed: the server skips the rest of the pipeline, the COMMIT included.
    """
    global sent
    if not available(conn) or not conn.in_transaction():
        return None
    raw = conn.connection.driver_connection
    cursors = []
    try:
        with raw.pipeline():
            for sql, params in statements:
                cursor = raw.cursor()
                cursor.execute(sql, params)
                cursors.append(cursor)
            raw.commit()
    except psycopg.Error as exc:
        raise _wrapped(conn, statements, exc) from exc
    sent += len(statements)
    for listener in listeners:  # ``committed``: the (then empty) commit SQLAlchemy goes through next sends nothing
        listener(conn, len(statements), committed=True)
    return [_utc_rows(cursor) if cursor.description else [] for cursor in cursors]


_DRIVER_SQL: dict[tuple[int, str], tuple[Any, str]] = {}


def driver_sql(statement: sa.Executable, dialect: sa.Dialect) -> str:
    """A Core statement built once (module level) as driver SQL, for a pipeline; its parameters are
    passed by bind name, as given: only for statements whose parameters need no bind processing
    (integers, strings), which is checked once."""
    key = (id(statement), dialect.name)
    found = _DRIVER_SQL.get(key)
    if found is None or found[0] is not statement:
        compiled = statement.compile(dialect=dialect)
        processed = [name for name, bind in compiled.binds.items()
                     if bind.type.dialect_impl(dialect).bind_processor(dialect) is not None]
        if processed:
            raise ValueError(f"parameters {processed} need bind processing; run this statement through SQLAlchemy")
        found = _DRIVER_SQL[key] = (statement, compiled.string)
    return found[1]


def _wrapped(conn: sa.Connection, statements: Sequence[tuple[str, dict[str, Any]]], exc: psycopg.Error) -> Exception:
    """The driver's error as SQLAlchemy's (``IntegrityError`` ...), as if SQLAlchemy had run the statements."""
    sql = "; ".join(s for s, _ in statements) or "COMMIT"
    return sa.exc.DBAPIError.instance(sql, None, exc, psycopg.Error, dialect=conn.dialect)


_TIMESTAMPTZ = 1184  # pg_type oid of timestamptz: the only columns psycopg returns tz-aware datetimes for


def _utc_rows(cursor: psycopg.Cursor) -> list[tuple]:
    """The cursor's rows, timestamptz values turned to UTC (the columns are found once, not per value)."""
    rows = cursor.fetchall()
    stamps = [i for i, column in enumerate(cursor.description or ()) if column.type_code == _TIMESTAMPTZ]
    if not stamps or not rows:
        return rows
    out = []
    for row in rows:
        values = list(row)
        for i in stamps:
            if values[i] is not None:
                values[i] = values[i].astimezone(timezone.utc)
        out.append(tuple(values))
    return out


def columns(table: sa.Table, alias: str) -> str:
    """``alias."col", ...`` for every column of ``table``, in table order."""
    return ", ".join(f'{alias}."{c.name}"' for c in table.columns)
