"""Failed reads are a state: balances keep the last good value next to the failed read's
block; token decimals are stored; the ranking index lists accounts whose health is unknown.

- ``balances.failed_block_number``: the block of the latest read when it failed (NULL once a
  read succeeds). Rows written by 0001 with ``raw`` NULL were failed reads without a value:
  they get ``failed_block_number = block_number``.
- ``token_decimals``: each watched token's decimals, so the last good balances of a token that
  stops answering ``decimals()`` can still be valued after a restart.
- ``ix_account_health_liquidatable`` covers ``flags & 129 <> 0`` (``LIQUIDATABLE`` or
  ``DEBT_UNKNOWN``) instead of ``flags & 1 = 1``.

Downgrade drops the column, the table and restores the index; a failed read's last good value
stays in ``raw`` (0001 then reads it as a good value, which is closer than a missing one).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from daemon.store.types import Timestamp

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ADDRESS = sa.String(42)
NAME = sa.String(64)
LIQUIDATABLE = sa.text("(flags & 1) = 1")
LISTED = sa.text("(flags & 129) <> 0")
RANKING_INDEX = "ix_account_health_liquidatable"


def _ranking_index(where: sa.TextClause) -> None:
    op.create_index(
        RANKING_INDEX,
        "account_health",
        [sa.text("shortfall DESC"), "account"],
        postgresql_where=where,
        sqlite_where=where,
    )


def upgrade() -> None:
    op.add_column("balances", sa.Column("failed_block_number", sa.BigInteger(), nullable=True))
    op.execute("UPDATE balances SET failed_block_number = block_number WHERE raw IS NULL")
    op.create_table(
        "token_decimals",
        sa.Column("chain", NAME, nullable=False),
        sa.Column("token", ADDRESS, nullable=False),
        sa.Column("decimals", sa.SmallInteger(), nullable=False),
        sa.Column("updated_at", Timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("chain", "token", name=op.f("pk_token_decimals")),
    )
    op.drop_index(RANKING_INDEX, table_name="account_health")
    _ranking_index(LISTED)


def downgrade() -> None:
    op.drop_index(RANKING_INDEX, table_name="account_health")
    _ranking_index(LIQUIDATABLE)
    op.drop_table("token_decimals")
    # A plain DROP COLUMN (SQLite >= 3.35 has it; the column is in no index): batch mode
    # would need the table's definition, which offline SQL (`migrate --sql`) cannot reflect.
    op.drop_column("balances", "failed_block_number")
