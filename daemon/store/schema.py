"""The database schema, in SQLAlchemy Core (bulk writes never go through an ORM).

``metadata`` is what ``migrations/versions`` create; a test checks the two agree. The
``*_stage`` tables are per-connection temporary tables a cycle is bulk-loaded into before one
set-based upsert (COPY on PostgreSQL, executemany on SQLite); they are not migrated.

Tables:
- ``chain_cursors``: per chain, the last block balances were stored at (number, hash).
- ``balances``: per (chain, token, account), the last good raw balance and the block it was
  read at. ``failed_block_number`` is set while the latest read failed (the block of that
  read; the last good value stays), NULL once a read succeeds again. ``raw`` NULL means no read
  ever succeeded (``block_number`` is then the failed read's).
- ``token_decimals``: every watched token's decimals as last established (config or chain),
  so a restart can still value the last good balances of a token that stopped answering.
- ``price_history``: every oracle round per asset, with status and sources (append-only).
- ``oracle_state``: per asset, the aggregator's resumable state after its newest stored round
  (``oracles.resume`` JSON: last good price, pending jump, volatility), upserted with that
  round; ``round_at`` keeps a replayed older round from overwriting a newer state.
- ``correlation_state``: per pair of risk groups (``"ETH/BTC"``), the correlation estimator's
  resumable state (``oracles.resume`` JSON), saved periodically and at shutdown
  (``margin.portfolio.correlation_source: ewma``; ``daemon.store.correlation_state``).
- ``cycles``: one row per engine cycle written: its key, time, block and price context.
- ``account_health``: one row per account, upserted; ``health`` NULL means infinite, or
  unknown when ``flags`` has ``DEBT_UNKNOWN`` (a liability never read);
  ``cycle_id``/``updated_at`` name the cycle that last *changed* the row (an unchanged row is
  not rewritten; ``cycles`` tells how current the table is). No foreign key to ``cycles``:
  checking one per row would double the cost of a 100k-row write, and cycles are never
  deleted. Only its key is indexed, so its updates are HOT.
- ``health_listing``: (account, shortfall) of every listed account (liquidatable or unknown),
  ranked by its index; kept equal to ``account_health`` by the cycle writer.
- ``health_transitions``: append-only history of flag changes; also the MQTT outbox
  (``published_at`` NULL until published).
- ``positions``: derivative positions posted by the protocol.
- ``options``: option lines posted by the protocol (several per asset: one per chain, right,
  strike and expiry).
- ``shard_leases``: cluster mode, one row per shard: the replica holding it (``owner``, NULL
  when free), its ``epoch`` (+1 at every acquisition: the fencing token every write carries)
  and ``expires_at`` (database clock). ``cluster_replicas``: every replica's ``last_seen``
  heartbeat (database clock). ``health_transitions.shard`` is the shard of its account (NULL
  outside cluster mode), so the owner of a shard publishes exactly its transitions.
- ``venue_accounts``: per (venue, account), the latest venue entry (``daemon.documents``
  ``venue_document``) with what ranks it (``liquidatable``, ``profit_usd``, ``shortfall_usd``)
  and ``announced_liquidatable``, the state the last MQTT venue event told: a row where the two
  differ is an event not yet acknowledged by the broker (the venue events' outbox).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from daemon.store.types import ExactDecimal, JSONDocument, Money, Timestamp, Uint256
from margin.model import MONEY_FIELDS, Flag

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Deterministic constraint names, so migrations (and SQLite batch mode) can refer to them."""

ADDRESS = sa.String(42)
HASH = sa.String(66)
NAME = sa.String(64)
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
"""SQLite only auto-increments an ``INTEGER PRIMARY KEY``."""

metadata = sa.MetaData(naming_convention=NAMING)

chain_cursors = sa.Table(
    "chain_cursors",
    metadata,
    sa.Column("chain", NAME, primary_key=True),
    sa.Column("block_number", sa.BigInteger(), nullable=False),
    sa.Column("block_hash", HASH, nullable=False),
    sa.Column("block_timestamp", sa.BigInteger(), nullable=True),
    sa.Column("updated_at", Timestamp(), nullable=False),
)

balances = sa.Table(
    "balances",
    metadata,
    sa.Column("chain", NAME, primary_key=True),
    sa.Column("token", ADDRESS, primary_key=True),
    sa.Column("account", ADDRESS, primary_key=True),
    sa.Column("raw", Uint256(), nullable=True),
    sa.Column("block_number", sa.BigInteger(), nullable=False),
    sa.Column("block_hash", HASH, nullable=False),
    sa.Column("updated_at", Timestamp(), nullable=False),
    sa.Column("failed_block_number", sa.BigInteger(), nullable=True),
    sa.Index(None, "chain", "block_number"),
    sa.Index(None, "account"),
)

token_decimals = sa.Table(
    "token_decimals",
    metadata,
    sa.Column("chain", NAME, primary_key=True),
    sa.Column("token", ADDRESS, primary_key=True),
    sa.Column("decimals", sa.SmallInteger(), nullable=False),
    sa.Column("updated_at", Timestamp(), nullable=False),
)

price_history = sa.Table(
    "price_history",
    metadata,
    sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
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
    sa.Column("sources", JSONDocument, nullable=False),
    sa.UniqueConstraint("asset", "round_at"),
)

oracle_state = sa.Table(
    "oracle_state",
    metadata,
    sa.Column("asset", NAME, primary_key=True),
    sa.Column("round_at", Timestamp(), nullable=False),
    sa.Column("state", JSONDocument, nullable=False),
    sa.Column("updated_at", Timestamp(), nullable=False),
)

correlation_state = sa.Table(
    "correlation_state",
    metadata,
    sa.Column("pair", NAME, primary_key=True),
    sa.Column("state", JSONDocument, nullable=False),
    sa.Column("updated_at", Timestamp(), nullable=False),
)

cycles = sa.Table(
    "cycles",
    metadata,
    sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
    sa.Column("key", NAME, nullable=False, unique=True),
    sa.Column("at", Timestamp(), nullable=False),
    sa.Column("blocks", JSONDocument, nullable=False),
    sa.Column("prices", JSONDocument, nullable=False),
    sa.Column("accounts", sa.Integer(), nullable=False),
)

MONEY_COLUMNS = MONEY_FIELDS  # one column per money result, named like it

HEALTH_FILLFACTOR = 50

account_health = sa.Table(
    "account_health",
    metadata,
    sa.Column("account", ADDRESS, primary_key=True),
    sa.Column("health", sa.Double(), nullable=True),
    sa.Column("health_latency", sa.Double(), nullable=True),
    *(sa.Column(name, Money(), nullable=False) for name in MONEY_COLUMNS),
    sa.Column("flags", sa.Integer(), nullable=False),
    sa.Column("actionable", sa.Boolean(), nullable=False),
    sa.Column("breakdown", JSONDocument, nullable=True),
    sa.Column("cycle_id", sa.BigInteger(), nullable=False),
    sa.Column("updated_at", Timestamp(), nullable=False),
    # Half-empty pages let PostgreSQL update a row in place (HOT, no index writes): a cycle
    # rewrites most rows, and no column but the key is indexed (the listing has its own
    # table, 0010), so even a flip is HOT.
    postgresql_with={"fillfactor": HEALTH_FILLFACTOR},
)
LISTED_FLAGS = int(Flag.LIQUIDATABLE | Flag.DEBT_UNKNOWN)


def listed(flags: sa.ColumnElement[int]) -> sa.ColumnElement[bool]:
    """``flags & 129 <> 0`` (liquidatable, or health unknown): ``/v1/liquidatable`` lists
    both, never calls unknown healthy."""
    return flags.bitwise_and(sa.literal_column(str(LISTED_FLAGS))) != sa.literal_column("0")


health_listing = sa.Table(
    "health_listing",
    metadata,
    sa.Column("account", ADDRESS, primary_key=True),
    sa.Column("shortfall", Money(), nullable=False),
)
"""The accounts ``/v1/liquidatable`` ranks, with their shortfall: exactly the
``account_health`` rows whose flags are ``listed``, written in the same transaction as their
flags and shortfall. A table of its own (0010), not a partial index on ``account_health``: that
index made every flip, and every new shortfall of a listed account, a non-HOT update of the
wide row (a new primary-key entry too); here a flip is one narrow insert or delete."""
sa.Index(
    "ix_health_listing_ranking",
    health_listing.c.shortfall.desc(),
    health_listing.c.account,
)

health_transitions = sa.Table(
    "health_transitions",
    metadata,
    sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
    sa.Column("account", ADDRESS, nullable=False),
    # The cycle's id, not a foreign key: checking it row by row cost ~15 % of a market-wide
    # move's write, and the writer inserts the cycle first in the same transaction (0008).
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
    # No unique key on (account, cycle_id, …): the writer cannot append a change twice (a
    # stored cycle is skipped whole, its id is new, each account staged once), and the key
    # was one more random B-tree insertion per transition of a market-wide move (0009).
    sa.Index(None, "account", "id"),
)
sa.Index(
    "ix_health_transitions_unpublished",
    health_transitions.c.id,
    postgresql_where=health_transitions.c.published_at.is_(None),
    sqlite_where=health_transitions.c.published_at.is_(None),
)

positions = sa.Table(
    "positions",
    metadata,
    sa.Column("account", ADDRESS, primary_key=True),
    sa.Column("asset", NAME, primary_key=True),
    sa.Column("chain", NAME, nullable=False),
    sa.Column("size", sa.Double(), nullable=False),
    sa.Column("entry_price", sa.Double(), nullable=False),
    sa.Column("mmr_tiers", JSONDocument, nullable=False),
    sa.Column("updated_at", Timestamp(), nullable=False),
)

options = sa.Table(
    "options",
    metadata,
    sa.Column("account", ADDRESS, primary_key=True),
    sa.Column("asset", NAME, primary_key=True),
    sa.Column("chain", NAME, primary_key=True),
    sa.Column("option_right", sa.String(4), primary_key=True),
    sa.Column("strike", sa.Double(), primary_key=True),
    sa.Column("expiry", sa.BigInteger(), primary_key=True),
    sa.Column("size", sa.Double(), nullable=False),
    sa.Column("implied_vol", sa.Double(), nullable=False),
    sa.Column("updated_at", Timestamp(), nullable=False),
)

shard_leases = sa.Table(
    "shard_leases",
    metadata,
    sa.Column("shard", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("owner", NAME, nullable=True),
    sa.Column("epoch", sa.BigInteger(), nullable=False),
    sa.Column("expires_at", Timestamp(), nullable=True),
)

cluster_replicas = sa.Table(
    "cluster_replicas",
    metadata,
    sa.Column("id", NAME, primary_key=True),
    sa.Column("started_at", Timestamp(), nullable=False),
    sa.Column("last_seen", Timestamp(), nullable=False),
)

venue_accounts = sa.Table(
    "venue_accounts",
    metadata,
    sa.Column("venue", NAME, primary_key=True),
    sa.Column("account", ADDRESS, primary_key=True),
    sa.Column("kind", NAME, nullable=False),
    sa.Column("chain", NAME, nullable=False),
    sa.Column("block_number", sa.BigInteger(), nullable=False),
    sa.Column("liquidatable", sa.Boolean(), nullable=False),
    sa.Column("stale", sa.Boolean(), nullable=False),
    sa.Column("profit_usd", sa.Double(), nullable=True),
    sa.Column("shortfall_usd", sa.Double(), nullable=True),
    sa.Column("document", JSONDocument, nullable=False),
    sa.Column("announced_liquidatable", sa.Boolean(), nullable=False),
    sa.Column("updated_at", Timestamp(), nullable=False),
    sa.Index(None, "account"),
    sa.Index(None, "liquidatable", "venue"),
)

# ---- per-connection staging tables (not migrated) ---------------------------------------
# No keys: the writer hands over unique rows, and an index would slow the bulk load.

stage_metadata = sa.MetaData()

health_stage = sa.Table(
    "health_stage",
    stage_metadata,
    sa.Column("account", ADDRESS),
    sa.Column("health", sa.Double()),
    sa.Column("health_latency", sa.Double()),
    *(sa.Column(name, sa.BigInteger()) for name in MONEY_COLUMNS),  # value units
    sa.Column("flags", sa.Integer()),
    sa.Column("actionable", sa.Boolean()),
    sa.Column("breakdown", sa.Text().with_variant(postgresql.JSONB(), "postgresql")),
    sa.Column("shard", sa.Integer()),
    prefixes=["TEMPORARY"],
    # Kept past the commit: a large cycle updates its remaining rows from it in a second
    # transaction on the same connection, after appending those the first one did not stage
    # (``daemon.store.cycle``); emptied at every other load. (SQLite keeps a temporary
    # table's rows anyway.)
    postgresql_on_commit="PRESERVE ROWS",
)

breakdown_stage = sa.Table(
    "breakdown_stage",
    stage_metadata,
    sa.Column("account", ADDRESS),
    sa.Column("breakdown", sa.Text().with_variant(postgresql.JSONB(), "postgresql")),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DELETE ROWS",
)
"""Breakdowns built after a cycle's transitions were committed (``daemon.store.cycle``)."""

balance_stage = sa.Table(
    "balance_stage",
    stage_metadata,
    sa.Column("chain", NAME),
    sa.Column("token", ADDRESS),
    sa.Column("account", ADDRESS),
    # Decimal text on both dialects, cast to NUMERIC by the upsert on PostgreSQL: asyncpg's
    # binary COPY of a Decimal costs ~7x the text (1.85 s vs 0.27 s of CPU for 400,000 rows).
    sa.Column("raw", sa.String(78)),
    sa.Column("block_number", sa.BigInteger()),
    sa.Column("block_hash", HASH),
    sa.Column("failed_block_number", sa.BigInteger()),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DELETE ROWS",
)
