"""Transitions without the foreign key to their cycle: ``health_transitions.cycle_id`` stays,
its check against ``cycles`` goes.

A market-wide move appends tens of thousands of transitions in one cycle's transaction, and
the key was checked row by row against the cycle inserted moments before in that same
transaction: ~15 % of the write's PostgreSQL CPU (bench/RESULTS.md, issue 14). Nothing relies
on it: no cascade, no pruning of ``cycles``, and the only writer inserts the cycle first.
SQLite rebuilds the table (Alembic batch mode; ``--sql`` renders it from the table as 0007
left it, which it cannot reflect offline).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from daemon.store.types import Money, Timestamp

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FOREIGN_KEY = "fk_health_transitions_cycle_id_cycles"
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def transitions_as_of_0007(*, foreign_key: bool) -> sa.Table | None:
    """``health_transitions`` as revisions 0001 and 0006 made it (with or without the key),
    for rendering SQL offline; ``None`` online (the live table is reflected)."""
    if not context.is_offline_mode():
        return None
    cycles = sa.Table("cycles", sa.MetaData(), sa.Column("id", ROW_ID, primary_key=True))
    keys = [sa.ForeignKeyConstraint(["cycle_id"], [cycles.c.id], name=FOREIGN_KEY)]
    return sa.Table(
        "health_transitions",
        cycles.metadata,
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
        *(keys if foreign_key else []),
        sa.UniqueConstraint(
            "account",
            "cycle_id",
            "from_flags",
            "to_flags",
            name="uq_health_transitions_account_cycle_id_from_flags_to_flags",
        ),
        sa.Index("ix_health_transitions_account_id", "account", "id"),
        sa.Index(
            "ix_health_transitions_unpublished",
            "id",
            postgresql_where=sa.text("published_at IS NULL"),
            sqlite_where=sa.text("published_at IS NULL"),
        ),
    )


def upgrade() -> None:
    copy = transitions_as_of_0007(foreign_key=True)
    with op.batch_alter_table("health_transitions", copy_from=copy) as batch:
        batch.drop_constraint(FOREIGN_KEY, type_="foreignkey")


def downgrade() -> None:
    copy = transitions_as_of_0007(foreign_key=False)
    with op.batch_alter_table("health_transitions", copy_from=copy) as batch:
        batch.create_foreign_key(FOREIGN_KEY, "cycles", ["cycle_id"], ["id"])
