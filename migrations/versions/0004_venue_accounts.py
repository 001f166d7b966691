"""Venue accounts: per (venue, account) the latest venue entry, its ranking figures and the
liquidatable state the last MQTT venue event announced (the venue events' outbox).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from daemon.store.types import Timestamp

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = sa.String(64)
ADDRESS = sa.String(42)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "venue_accounts",
        sa.Column("venue", NAME, nullable=False),
        sa.Column("account", ADDRESS, nullable=False),
        sa.Column("kind", NAME, nullable=False),
        sa.Column("chain", NAME, nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("liquidatable", sa.Boolean(), nullable=False),
        sa.Column("stale", sa.Boolean(), nullable=False),
        sa.Column("profit_usd", sa.Double(), nullable=True),
        sa.Column("shortfall_usd", sa.Double(), nullable=True),
        sa.Column("document", JSON, nullable=False),
        sa.Column("announced_liquidatable", sa.Boolean(), nullable=False),
        sa.Column("updated_at", Timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("venue", "account", name=op.f("pk_venue_accounts")),
    )
    op.create_index(
        op.f("ix_venue_accounts_account"), "venue_accounts", ["account"], unique=False
    )
    op.create_index(
        op.f("ix_venue_accounts_liquidatable_venue"),
        "venue_accounts",
        ["liquidatable", "venue"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_venue_accounts_liquidatable_venue"), table_name="venue_accounts")
    op.drop_index(op.f("ix_venue_accounts_account"), table_name="venue_accounts")
    op.drop_table("venue_accounts")
