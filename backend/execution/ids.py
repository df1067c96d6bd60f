"""Ids drawn from tables' sequences before their rows exist (Postgres).

Rows that point at each other (a risk decision and its orders, an entry and
its bracket legs) normally go in one INSERT ... RETURNING per dependency
level, each a round trip.  With their ids drawn ahead, in a statement the
transaction makes anyway (with the signal's INSERT: ``loading.read``), they
are all written by the journal's single ``bulk.Writes`` statement.  An id
drawn and not used is a gap in the sequence, which nothing relies on.
"""

from __future__ import annotations

import sqlalchemy as sa

from backend.execution.bulk import supported

_NEXTVAL = "ARRAY(SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, %({param})s))"


class IdPool:
    """Ids drawn from tables' sequences before their rows exist, so that rows which point at each
    other (a decision and its orders, an entry and its bracket) can all be written by one ``Writes``
    statement instead of one INSERT ... RETURNING per dependency level.  Unused ids are gaps."""

    def __init__(self, ids: dict[str, list[int]]) -> None:
        self._ids = {table: list(values) for table, values in ids.items()}

    def take(self, table: str, n: int) -> list[int] | None:
        """``n`` ids of ``table``, or None (and nothing taken) if the pool has fewer."""
        ids = self._ids.get(table, [])
        if len(ids) < n:
            return None
        taken, self._ids[table] = ids[:n], ids[n:]
        return taken


def nextval_columns(counts: dict[str, int]) -> tuple[str, dict[str, int]]:
    """SELECT-list expressions drawing ``counts[table]`` ids of each table, one array column each."""
    names = sorted(counts)
    sql = ", ".join(_NEXTVAL.format(table=t, param=f"ids_{i}") for i, t in enumerate(names))
    return sql, {f"ids_{i}": counts[t] for i, t in enumerate(names)}


def draw_ids(conn: sa.Connection, counts: dict[str, int]) -> IdPool | None:
    """One statement drawing ids for ``counts`` (Postgres; None elsewhere)."""
    counts = {t: n for t, n in counts.items() if n > 0}
    if not supported(conn) or not counts:
        return None
    sql, params = nextval_columns(counts)
    row = conn.exec_driver_sql("SELECT " + sql, params).one()
    return IdPool(dict(zip(sorted(counts), row)))
