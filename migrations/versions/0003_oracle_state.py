"""Oracle state: per asset, the aggregator's resumable state (last good price, pending jump,
volatility), so a restart resumes the breaker where it stopped.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from daemon.store.types import Timestamp

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = sa.String(64)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "oracle_state",
        sa.Column("asset", NAME, nullable=False),
        sa.Column("round_at", Timestamp(), nullable=False),
        sa.Column("state", JSON, nullable=False),
        sa.Column("updated_at", Timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("asset", name=op.f("pk_oracle_state")),
    )


def downgrade() -> None:
    op.drop_table("oracle_state")
