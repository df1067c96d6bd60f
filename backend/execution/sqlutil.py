"""SQL idioms the engine needs on both SQLite and Postgres.

* ``insert_ignore``: ``INSERT ... ON CONFLICT DO NOTHING``, the way a
  redelivered message or a second worker loses a race without an exception
  (and without poisoning the transaction, which a caught IntegrityError
  would do on Postgres).
* ``locked``: ``SELECT ... FOR UPDATE`` on Postgres, so two workers never
  apply the same fill or fan out the same signal at once.  SQLite has no
  row locks; its single writer serialises the transactions instead.
* ``insert_rows``: a plain INSERT of many rows.

On Postgres both take ``bulk``'s one-statement ``unnest`` path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from backend.execution.bulk import bulk_insert, supported, uniform


def dialect(session: Session | sa.Connection) -> str:
    if isinstance(session, sa.Connection):
        return session.dialect.name
    return session.get_bind().dialect.name


def _conn(session: Session | sa.Connection) -> sa.Connection:
    return session if isinstance(session, sa.Connection) else session.connection()


def insert_ignore(session: Session | sa.Connection, model: Any, rows: Sequence[dict[str, Any]],
                  conflict: Sequence[str], returning: Sequence[str] = ()) -> list[Any]:
    """Insert ``rows`` skipping those that hit the unique ``conflict`` columns.

    Returns the ``returning`` columns of the rows actually inserted (none for
    the skipped ones), whatever their number, in one statement on Postgres.
    """
    if not rows:
        return []
    table = getattr(model, "__table__", model)
    conn = _conn(session)
    if supported(conn) and uniform(rows):
        return bulk_insert(conn, table, rows, conflict=conflict, returning=returning)
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(table).on_conflict_do_nothing(index_elements=list(conflict))
    if not returning:
        conn.execute(stmt, list(rows))
        return []
    # executemany + RETURNING: SQLAlchemy's "insertmanyvalues" sends batched multi-row INSERTs from one
    # cached statement (a literal VALUES list of N rows would be compiled anew for every N).
    stmt = stmt.returning(*[table.c[name] for name in returning])
    return list(conn.execute(stmt, list(rows)).all())


def insert_rows(session: Session | sa.Connection, model: Any, rows: Sequence[dict[str, Any]],
                returning: Sequence[str] = ()) -> list[Any]:
    """A plain INSERT of ``rows`` (one statement on Postgres); ``returning`` rows come back in input order."""
    if not rows:
        return []
    table = getattr(model, "__table__", model)
    conn = _conn(session)
    if supported(conn) and uniform(rows):
        return bulk_insert(conn, table, rows, returning=returning, ordered=bool(returning))
    if not returning:
        conn.execute(_plain_insert(table), list(rows))
        return []
    stmt = sa.insert(table).returning(*[table.c[name] for name in returning], sort_by_parameter_order=True)
    return list(conn.execute(stmt, list(rows)).all())


def locked(session: Session, stmt: sa.Select) -> sa.Select:
    """``stmt`` with FOR UPDATE where the database supports row locks."""
    return stmt.with_for_update() if dialect(session) == "postgresql" else stmt


_PLAIN_INSERTS: dict[sa.Table, sa.Insert] = {}


def _plain_insert(table: sa.Table) -> sa.Insert:
    stmt = _PLAIN_INSERTS.get(table)
    if stmt is None:
        stmt = _PLAIN_INSERTS[table] = sa.insert(table)
    return stmt
