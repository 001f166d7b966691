"""Options: option lines posted through ``PUT /v1/positions`` (``kind: option``), several per
asset, replaced with the account's perps in one transaction.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from daemon.store.types import Timestamp

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ADDRESS = sa.String(42)
NAME = sa.String(64)


def upgrade() -> None:
    op.create_table(
        "options",
        sa.Column("account", ADDRESS, nullable=False),
        sa.Column("asset", NAME, nullable=False),
        sa.Column("chain", NAME, nullable=False),
        sa.Column("option_right", sa.String(4), nullable=False),
        sa.Column("strike", sa.Double(), nullable=False),
        sa.Column("expiry", sa.BigInteger(), nullable=False),
        sa.Column("size", sa.Double(), nullable=False),
        sa.Column("implied_vol", sa.Double(), nullable=False),
        sa.Column("updated_at", Timestamp(), nullable=False),
        sa.PrimaryKeyConstraint(
            "account",
            "asset",
            "chain",
            "option_right",
            "strike",
            "expiry",
            name=op.f("pk_options"),
        ),
    )


def downgrade() -> None:
    op.drop_table("options")
