"""Correlation state: per pair of risk groups, the EWMA correlation estimator's resumable state,
so ``correlation_source: ewma`` does not start its warm-up again after a restart.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from daemon.store.types import Timestamp

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = sa.String(64)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "correlation_state",
        sa.Column("pair", NAME, nullable=False),
        sa.Column("state", JSON, nullable=False),
        sa.Column("updated_at", Timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("pair", name=op.f("pk_correlation_state")),
    )


def downgrade() -> None:
    op.drop_table("correlation_state")
