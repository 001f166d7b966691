"""Initial schema: chain cursors, balances, price history, cycles, account health,
health transitions, positions.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from daemon.store.types import ExactDecimal, Money, Timestamp, Uint256

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ADDRESS = sa.String(42)
HASH = sa.String(66)
NAME = sa.String(64)
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
MONEY_COLUMNS = (
    "collateral_value",
    "weighted_collateral",
    "liability_value",
    "weighted_liability",
    "unrealized_pnl",
    "maintenance",
    "shortfall",
)
UNPUBLISHED = sa.text("published_at IS NULL")
LIQUIDATABLE = sa.text("(flags & 1) = 1")


def upgrade() -> None:
    op.create_table(
        "chain_cursors",
        sa.Column("chain", NAME, nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", HASH, nullable=False),
        sa.Column("block_timestamp", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", Timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("chain", name=op.f("pk_chain_cursors")),
    )
    op.create_table(
        "balances",
        sa.Column("chain", NAME, nullable=False),
        sa.Column("token", ADDRESS, nullable=False),
        sa.Column("account", ADDRESS, nullable=False),
        sa.Column("raw", Uint256(), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", HASH, nullable=False),
        sa.Column("updated_at", Timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("chain", "token", "account", name=op.f("pk_balances")),
    )
    op.create_index(op.f("ix_balances_account"), "balances", ["account"])
    op.create_index(
        op.f("ix_balances_chain_block_number"), "balances", ["chain", "block_number"]
    )
    op.create_table(
        "price_history",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("asset", NAME, nullable=False),
        sa.Column("round_at", Timestamp(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("price", ExactDecimal(), nullable=True),
        sa.Column("price_low", ExactDecimal(), nullable=True),
        sa.Column("price_high", ExactDecimal(), nullable=True),
        sa.Column("round_price", ExactDecimal(), nullable=True),
        sa.Column("observed_at", Timestamp(), nullable=True),
        sa.Column("held", sa.Boolean(), nullable=False),
        sa.Column("hold_reason", sa.String(32), nullable=True),
        sa.Column("spread", sa.Double(), nullable=True),
        sa.Column("volatility", sa.Double(), nullable=False),
        sa.Column("sources", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_price_history")),
        sa.UniqueConstraint(
            "asset", "round_at", name=op.f("uq_price_history_asset_round_at")
        ),
    )
    op.create_table(
        "cycles",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("key", NAME, nullable=False),
        sa.Column("at", Timestamp(), nullable=False),
        sa.Column("blocks", JSON, nullable=False),
        sa.Column("prices", JSON, nullable=False),
        sa.Column("accounts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cycles")),
        sa.UniqueConstraint("key", name=op.f("uq_cycles_key")),
    )
    op.create_table(
        "account_health",
        sa.Column("account", ADDRESS, nullable=False),
        sa.Column("health", sa.Double(), nullable=True),
        sa.Column("health_latency", sa.Double(), nullable=True),
        *(sa.Column(name, Money(), nullable=False) for name in MONEY_COLUMNS),
        sa.Column("flags", sa.Integer(), nullable=False),
        sa.Column("actionable", sa.Boolean(), nullable=False),
        sa.Column("breakdown", JSON, nullable=True),
        sa.Column("cycle_id", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", Timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("account", name=op.f("pk_account_health")),
        postgresql_with={"fillfactor": 50},
    )
    op.create_index(
        "ix_account_health_liquidatable",
        "account_health",
        [sa.text("shortfall DESC"), "account"],
        postgresql_where=LIQUIDATABLE,
        sqlite_where=LIQUIDATABLE,
    )
    op.create_table(
        "health_transitions",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("account", ADDRESS, nullable=False),
        sa.Column("cycle_id", sa.BigInteger(), nullable=False),
        sa.Column("from_flags", sa.Integer(), nullable=False),
        sa.Column("to_flags", sa.Integer(), nullable=False),
        sa.Column("health", sa.Double(), nullable=True),
        sa.Column("health_latency", sa.Double(), nullable=True),
        sa.Column("shortfall", Money(), nullable=False),
        sa.Column("actionable", sa.Boolean(), nullable=False),
        sa.Column("at", Timestamp(), nullable=False),
        sa.Column("published_at", Timestamp(), nullable=True),
        sa.ForeignKeyConstraint(
            ["cycle_id"], ["cycles.id"], name=op.f("fk_health_transitions_cycle_id_cycles")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_health_transitions")),
        sa.UniqueConstraint(
            "account",
            "cycle_id",
            "from_flags",
            "to_flags",
            name=op.f("uq_health_transitions_account_cycle_id_from_flags_to_flags"),
        ),
    )
    op.create_index(
        op.f("ix_health_transitions_account_id"), "health_transitions", ["account", "id"]
    )
    op.create_index(
        "ix_health_transitions_unpublished",
        "health_transitions",
        ["id"],
        postgresql_where=UNPUBLISHED,
        sqlite_where=UNPUBLISHED,
    )
    op.create_table(
        "positions",
        sa.Column("account", ADDRESS, nullable=False),
        sa.Column("asset", NAME, nullable=False),
        sa.Column("chain", NAME, nullable=False),
        sa.Column("size", sa.Double(), nullable=False),
        sa.Column("entry_price", sa.Double(), nullable=False),
        sa.Column("mmr_tiers", JSON, nullable=False),
        sa.Column("updated_at", Timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("account", "asset", name=op.f("pk_positions")),
    )


def downgrade() -> None:
    op.drop_table("positions")
    op.drop_index("ix_health_transitions_unpublished", table_name="health_transitions")
    op.drop_index(op.f("ix_health_transitions_account_id"), table_name="health_transitions")
    op.drop_table("health_transitions")
    op.drop_index("ix_account_health_liquidatable", table_name="account_health")
    op.drop_table("account_health")
    op.drop_table("cycles")
    op.drop_table("price_history")
    op.drop_index(op.f("ix_balances_chain_block_number"), table_name="balances")
    op.drop_index(op.f("ix_balances_account"), table_name="balances")
    op.drop_table("balances")
    op.drop_table("chain_cursors")
