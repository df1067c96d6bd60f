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
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

sent = 0
listeners: list = []  # callables(conn, statements) told of each pipeline round trip
_OFF = bool(os.environ.get("DTE_NO_PIPELINE"))


def available(conn: sa.Connection) -> bool:
    return not _OFF and conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg"


def read(conn: sa.Connection, statements: Sequence[tuple[str, dict[str, Any]]]) -> list[list[tuple]] | None:
    """Run ``statements`` (driver syntax) in one round trip; their rows, or None where unsupported."""
    global sent
    if not available(conn):
        return None
    if not conn.in_transaction():
        conn.begin()  # so that SQLAlchemy commits (or rolls back) what these statements did
    raw = conn.connection.driver_connection
    cursors = []
    with raw.pipeline():
        for sql, params in statements:
            cursor = raw.cursor()
            cursor.execute(sql, params)
            cursors.append(cursor)
    sent += len(statements)
    for listener in listeners:
        listener(conn, len(statements))
    return [[_utc_row(row) for row in cursor.fetchall()] for cursor in cursors]


def _utc_row(row: tuple) -> tuple:
    if any(isinstance(v, datetime) for v in row):
        return tuple(v.astimezone(timezone.utc) if isinstance(v, datetime) and v.tzinfo else v for v in row)
    return row


def columns(table: sa.Table, alias: str) -> str:
    """``alias."col", ...`` for every column of ``table``, in table order."""
    return ", ".join(f'{alias}."{c.name}"' for c in table.columns)
