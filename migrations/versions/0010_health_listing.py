"""The liquidatable listing in its own table, so that ``account_health`` updates are HOT.

``ix_account_health_liquidatable`` (shortfall DESC, account WHERE flags & 129 <> 0) covered
``flags`` and ``shortfall``: every flip, and every new shortfall of a listed account, was a
non-HOT update of the wide row (a new heap tuple elsewhere, a new primary-key entry and a
listing entry). ``health_listing`` (account, shortfall) holds the listed accounts instead,
ranked by its own index, and the cycle writer keeps it equal to the listed ``account_health``
rows in the same transaction; ``account_health`` keeps only its primary key, so every update
of it can stay on its page (``fillfactor`` 50 leaves the room). bench/RESULTS.md, issue 12.

Upgrade fills the table from the listed rows; downgrade restores the partial index.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from daemon.store.types import Money

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LISTED = sa.text("(flags & 129) <> 0")
OLD_INDEX = "ix_account_health_liquidatable"


def upgrade() -> None:
    op.create_table(
        "health_listing",
        sa.Column("account", sa.String(42), nullable=False),
        sa.Column("shortfall", Money(), nullable=False),
        sa.PrimaryKeyConstraint("account", name=op.f("pk_health_listing")),
    )
    op.create_index(
        "ix_health_listing_ranking",
        "health_listing",
        [sa.text("shortfall DESC"), "account"],
    )
    op.execute(
        "INSERT INTO health_listing (account, shortfall) "
        "SELECT account, shortfall FROM account_health WHERE (flags & 129) <> 0"
    )
    op.drop_index(OLD_INDEX, table_name="account_health")


def downgrade() -> None:
    op.create_index(
        OLD_INDEX,
        "account_health",
        [sa.text("shortfall DESC"), "account"],
        postgresql_where=LISTED,
        sqlite_where=LISTED,
    )
    op.drop_index("ix_health_listing_ranking", table_name="health_listing")
    op.drop_table("health_listing")
