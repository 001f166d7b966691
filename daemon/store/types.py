"""Column types that keep their Python meaning on both dialects.

SQLite has no exact wide numeric: a column of NUMERIC affinity turns anything past 2**63 or
with a fraction into a float. So exact values (uint256 balances, oracle prices) are TEXT there
and NUMERIC on PostgreSQL; money that must sort (shortfall ranking) is REAL on SQLite, which is
exact for the engine's cent-quantized values below 10**13 USD (15 significant digits).
Times are unix seconds (``float``) in Python, ``TIMESTAMPTZ`` on PostgreSQL (microseconds) and
ISO text (UTC) on SQLite, so operators can read them in SQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine

UINT256_DIGITS = 78
MONEY_PRECISION = 38
MONEY_SCALE = 4
"""Four places: the engine quantizes to at most 10**-4 USD (``MAX_VALUE_DECIMALS``)."""


def _is_postgres(dialect: Dialect) -> bool:
    return dialect.name == "postgresql"


class Uint256(sa.TypeDecorator[int]):
    """An exact non-negative integer up to 2**256 - 1: ``NUMERIC(78, 0)`` or decimal TEXT."""

    impl = sa.Numeric(UINT256_DIGITS, 0)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if _is_postgres(dialect):
            return dialect.type_descriptor(sa.Numeric(UINT256_DIGITS, 0, asdecimal=True))
        return dialect.type_descriptor(sa.String(UINT256_DIGITS))

    def process_bind_param(self, value: int | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return Decimal(value) if _is_postgres(dialect) else str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        return None if value is None else int(value)


class ExactDecimal(sa.TypeDecorator[Decimal]):
    """A ``Decimal`` stored without rounding: unconstrained ``NUMERIC`` or TEXT."""

    impl = sa.Numeric()
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if _is_postgres(dialect):
            return dialect.type_descriptor(sa.Numeric(asdecimal=True))
        return dialect.type_descriptor(sa.String(100))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return value if _is_postgres(dialect) else str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)


class Money(sa.TypeDecorator[Decimal]):
    """USD amounts: ``NUMERIC(38, 4)`` on PostgreSQL, REAL on SQLite (orderable there)."""

    impl = sa.Numeric(MONEY_PRECISION, MONEY_SCALE)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if _is_postgres(dialect):
            return dialect.type_descriptor(sa.Numeric(MONEY_PRECISION, MONEY_SCALE, asdecimal=True))
        return dialect.type_descriptor(sa.Double())

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return value if _is_postgres(dialect) else float(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, float):
            # The shortest repr of the double is the decimal that was stored (≤ 15 digits).
            return Decimal(repr(value))
        return Decimal(value)


class Timestamp(sa.TypeDecorator[float]):
    """Unix seconds in Python; ``TIMESTAMPTZ`` on PostgreSQL, UTC ISO text on SQLite."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if _is_postgres(dialect):
            return dialect.type_descriptor(postgresql.TIMESTAMP(timezone=True))
        return dialect.type_descriptor(sa.DateTime())

    def process_bind_param(self, value: float | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        moment = datetime.fromtimestamp(value, UTC)
        return moment if _is_postgres(dialect) else moment.replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> float | None:
        if value is None:
            return None
        if isinstance(value, datetime):
            aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
            return aware.timestamp()
        return float(value)


JSONDocument = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
"""A JSON value: ``JSONB`` on PostgreSQL, JSON text on SQLite."""
