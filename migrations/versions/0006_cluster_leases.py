"""Cluster mode: shard leases (owner, epoch, expiry), replica heartbeats, and the shard of
every transition (the outbox is published per shard by the shard's owner).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from daemon.store.types import Timestamp

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = sa.String(64)


def upgrade() -> None:
    op.create_table(
        "shard_leases",
        sa.Column("shard", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("owner", NAME, nullable=True),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", Timestamp(), nullable=True),
        sa.PrimaryKeyConstraint("shard", name=op.f("pk_shard_leases")),
    )
    op.create_table(
        "cluster_replicas",
        sa.Column("id", NAME, nullable=False),
        sa.Column("started_at", Timestamp(), nullable=False),
        sa.Column("last_seen", Timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cluster_replicas")),
    )
    op.add_column("health_transitions", sa.Column("shard", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("health_transitions", "shard")
    op.drop_table("cluster_replicas")
    op.drop_table("shard_leases")
