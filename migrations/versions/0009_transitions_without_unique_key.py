"""Transitions without the unique key (account, cycle_id, from_flags, to_flags).

The key guarded against one change being appended twice, which the writer already rules out
before any row is inserted: a cycle's id is created by the very transaction that appends its
transitions (a cycle whose key is stored is skipped whole: ``cycles.key`` is unique), cycle
writers are serialized (advisory lock / ``BEGIN IMMEDIATE``), and a cycle stages each account
once (``HealthRows`` refuses a repeated account), so no two rows can share (account, cycle).
Keeping it cost one more B-tree insertion, at a random place, per transition: a market-wide
move at a million accounts appends 500,000 of them (bench/RESULTS.md, issue 12).

SQLite rebuilds the table (Alembic batch mode; ``--sql`` renders it from the table as 0008
left it, which it cannot reflect offline).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from daemon.store.types import Money, Timestamp

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNIQUE_KEY = "uq_health_transitions_account_cycle_id_from_flags_to_flags"
KEY_COLUMNS = ["account", "cycle_id", "from_flags", "to_flags"]
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def transitions_as_of_0008(*, unique_key: bool) -> sa.Table | None:
    """``health_transitions`` as revision 0008 left it (with or without the key), for
    rendering SQL offline; ``None`` online (the live table is reflected)."""
    if not context.is_offline_mode():
        return None
    keys = [sa.UniqueConstraint(*KEY_COLUMNS, name=UNIQUE_KEY)] if unique_key else []
    return sa.Table(
        "health_transitions",
        sa.MetaData(),
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("account", sa.String(42), nullable=False),
        sa.Column("cycle_id", sa.BigInteger(), nullable=False),
        sa.Column("from_flags", sa.Integer(), nullable=False),
        sa.Column("to_flags", sa.Integer(), nullable=False),
        sa.Column("health", sa.Double(), nullable=True),
        sa.Column("health_latency", sa.Double(), nullable=True),
        sa.Column("shortfall", Money(), nullable=False),
        sa.Column("actionable", sa.Boolean(), nullable=False),
        sa.Column("at", Timestamp(), nullable=False),
        sa.Column("published_at", Timestamp(), nullable=True),
        sa.Column("shard", sa.Integer(), nullable=True),
        *keys,
        sa.Index("ix_health_transitions_account_id", "account", "id"),
        sa.Index(
            "ix_health_transitions_unpublished",
            "id",
            postgresql_where=sa.text("published_at IS NULL"),
            sqlite_where=sa.text("published_at IS NULL"),
        ),
    )


def upgrade() -> None:
    copy = transitions_as_of_0008(unique_key=True)
    with op.batch_alter_table("health_transitions", copy_from=copy) as batch:
        batch.drop_constraint(UNIQUE_KEY, type_="unique")


def downgrade() -> None:
    copy = transitions_as_of_0008(unique_key=False)
    with op.batch_alter_table("health_transitions", copy_from=copy) as batch:
        batch.create_unique_constraint(UNIQUE_KEY, KEY_COLUMNS)
