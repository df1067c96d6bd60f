"""Column types that keep the product's two invariants on every database.

* ``DecimalType``: money and quantities are ``Decimal``.  Postgres stores
  ``NUMERIC(28, 10)``; SQLite has no exact decimal type (it would go through
  float), so there the value is stored as canonical text and read back as an
  exact ``Decimal``.
* ``UTCDateTime``: timestamps are timezone-aware UTC.  Naive datetimes are
  refused on write (they are always a bug), and SQLite's naive values are
  marked UTC on read.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator


SCALE = Decimal("1e-10")


class DecimalType(TypeDecorator):
    impl = sa.Numeric(28, 10)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(64))
        return dialect.type_descriptor(sa.Numeric(28, 10, asdecimal=True))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError("money and quantities must be Decimal, not float")
        value = Decimal(value).quantize(SCALE)  # the same 10 decimal places on every database
        if dialect.name == "sqlite":
            return format(value, "f")
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return Decimal(value) if not isinstance(value, Decimal) else value


class UTCDateTime(TypeDecorator):
    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: times are stored as UTC-aware values")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
