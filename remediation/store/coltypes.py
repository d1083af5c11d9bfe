"""Column types that behave the same on SQLite and PostgreSQL.

Two portability traps live here so the table definitions can stay declarative:

* SQLite has no timestamp-with-time-zone type. SQLAlchemy stores the wall-clock digits and drops the
  offset, so an aware datetime goes in and a *naive* one comes back. :class:`UTCDateTime` normalises
  every value to UTC on the way in and re-attaches UTC on the way out, on both backends, so callers only
  ever see aware UTC datetimes and comparisons in SQL (``completed_at >= :since``) compare like with like.
* ``JSON`` stores Python ``None`` as the JSON literal ``null`` unless told otherwise, which would make a
  "nullable" JSON column never ``IS NULL``. :data:`JSONDoc` uses ``none_as_null`` and JSONB on PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine


class UTCDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that only accepts aware values and always returns aware UTC.

    Naive datetimes are rejected rather than guessed at: a timestamp in the ledger whose zone is
    ambiguous is worse than a loud error at the call site.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: the store only accepts timezone-aware datetimes")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            # SQLite keeps the digits only; make sure they are the UTC digits.
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def require_aware(value: datetime, name: str) -> datetime:
    """``value`` if it is timezone-aware; else a ValueError naming the argument (before any SQL is sent)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {value!r}")
    return value


def _json() -> TypeEngine[Any]:
    return JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


#: JSON document column: JSONB on PostgreSQL, JSON (text) on SQLite; Python ``None`` is SQL NULL.
JSONDoc: TypeEngine[Any] = _json()
