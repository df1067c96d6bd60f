"""Field helpers so every table declares money and time the same way."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field

from backend.db.types import DecimalType, UTCDateTime, utcnow


def money(default: Decimal | None = None, *, nullable: bool = False, index: bool = False) -> Any:
    return Field(default=default, sa_column_kwargs={}, sa_type=DecimalType, nullable=nullable, index=index)


def opt_money() -> Any:
    return Field(default=None, sa_type=DecimalType, nullable=True)


def now_field() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


def timestamp(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


def json_field(default_factory=dict) -> Any:
    return Field(default_factory=default_factory, sa_type=sa.JSON, nullable=False)


def fk(target: str, *, nullable: bool = False, index: bool = True, ondelete: str | None = None) -> Any:
    return Field(default=None, foreign_key=target, nullable=nullable, index=index, ondelete=ondelete)


__all__ = ["money", "opt_money", "now_field", "timestamp", "json_field", "fk", "datetime", "Decimal"]
