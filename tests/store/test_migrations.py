"""Migrations on real PostgreSQL and SQLite: both ways, in step with the code's schema, and
the ``crossmargin migrate`` command with its exit codes and redacted messages."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from core.errors import ConfigError
from daemon.cli import main
from daemon.config.load import load_config, parse_config
from daemon.store.engine import create_store_engine
from daemon.store.errors import MigrationFailed, SchemaNotCurrent, StoreUnavailable
from daemon.store.migrate import current_revision, head_revision, migrate, migration_sql
from daemon.store.schema import metadata
from daemon.store.writer import HealthStore
from margin.model import Flag
from tests.storekit import DIALECTS

TABLES = {
    "account_health",
    "balances",
    "chain_cursors",
    "cycles",
    "health_transitions",
    "options",
    "oracle_state",
    "positions",
    "price_history",
    "token_decimals",
    "venue_accounts",
    "shard_leases",
    "cluster_replicas",
    "correlation_state",
    "health_listing",
}
LATER_TABLES: set[str] = {
    "venue_accounts",
    "options",
    "shard_leases",
    "cluster_replicas",
    "correlation_state",
    "health_listing",
}
"""Tables of revisions after 0003 (0004: venue entries, 0005: options, 0006: cluster leases,
0007: correlation state, 0010: the listing): a downgrade below 0003 drops them too."""
CONFIG = """\
chains: [{name: eth, chain_id: 1, rpc_urls: ["http://127.0.0.1:1"]}]
tokens:
  - {chain: eth, address: "0x1111111111111111111111111111111111111111", asset: ETH,
     role: collateral, weight: 0.8}
accounts: ["0x2222222222222222222222222222222222222222"]
"""


async def table_names(url: str) -> set[str]:
    engine = create_store_engine(url)
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
    finally:
        await engine.dispose()
    return names - {"alembic_version"}


async def test_upgrade_downgrade_and_upgrade_again(database_url: str) -> None:
    up = await migrate(database_url)
    assert (up.before, up.after, up.direction) == (None, head_revision(), "upgrade")
    assert await table_names(database_url) == TABLES
    again = await migrate(database_url, "head")
    assert again.direction == "none"
    down = await migrate(database_url, "base")
    assert (down.after, down.direction) == (None, "downgrade")
    assert await table_names(database_url) == set()
    await migrate(database_url, "head")
    assert await table_names(database_url) == TABLES
    async with await HealthStore.open(database_url) as store:
        assert (await store.load_state()).cursors == {}


async def test_venue_accounts_revision_up_and_down(database_url: str) -> None:
    await migrate(database_url, "0004")
    assert "venue_accounts" in await table_names(database_url)
    down = await migrate(database_url, "-1")
    assert (down.before, down.direction) == ("0004", "downgrade")
    assert await table_names(database_url) == TABLES - LATER_TABLES
    await migrate(database_url)
    assert await table_names(database_url) == TABLES


async def test_oracle_state_revision_up_and_down(database_url: str) -> None:
    await migrate(database_url, "0003")
    assert "oracle_state" in await table_names(database_url)
    down = await migrate(database_url, "-1")
    assert (down.before, down.direction) == ("0003", "downgrade")
    assert await table_names(database_url) == TABLES - {"oracle_state"} - LATER_TABLES
    await migrate(database_url)
    assert await table_names(database_url) == TABLES


async def test_cluster_revision_up_and_down(database_url: str) -> None:
    await migrate(database_url, "0006")
    assert {"shard_leases", "cluster_replicas"} <= await table_names(database_url)
    down = await migrate(database_url, "-1")
    assert (down.before, down.direction) == ("0006", "downgrade")
    assert await table_names(database_url) == TABLES - {
        "shard_leases",
        "cluster_replicas",
        "correlation_state",
        "health_listing",
    }
    await migrate(database_url)
    assert await table_names(database_url) == TABLES


async def test_correlation_state_revision_up_and_down(database_url: str) -> None:
    await migrate(database_url, "0007")
    assert "correlation_state" in await table_names(database_url)
    down = await migrate(database_url, "-1")
    assert (down.before, down.direction) == ("0007", "downgrade")
    assert await table_names(database_url) == TABLES - {"correlation_state", "health_listing"}
    await migrate(database_url)
    assert await table_names(database_url) == TABLES


async def unique_keys(url: str, table: str) -> list[str | None]:
    engine = create_store_engine(url)
    try:
        async with engine.connect() as conn:
            found = await conn.run_sync(lambda c: sa.inspect(c).get_unique_constraints(table))
    finally:
        await engine.dispose()
    return [key["name"] for key in found]


async def test_transitions_unique_key_revision_up_and_down(database_url: str) -> None:
    key = "uq_health_transitions_account_cycle_id_from_flags_to_flags"
    await migrate(database_url, "0008")
    assert await unique_keys(database_url, "health_transitions") == [key]
    up = await migrate(database_url, "0009")
    assert (up.before, up.direction) == ("0008", "upgrade")
    assert await unique_keys(database_url, "health_transitions") == []
    down = await migrate(database_url, "-1")
    assert (down.before, down.direction) == ("0009", "downgrade")
    assert await unique_keys(database_url, "health_transitions") == [key]
    await migrate(database_url)
    assert await table_names(database_url) == TABLES


async def index_names(url: str, table: str) -> list[str | None]:
    engine = create_store_engine(url)
    try:
        async with engine.connect() as conn:
            found = await conn.run_sync(lambda c: sa.inspect(c).get_indexes(table))
    finally:
        await engine.dispose()
    return sorted(index["name"] for index in found)


HEALTH_AT_0009 = """INSERT INTO account_health (account, health, health_latency,
    collateral_value, weighted_collateral, liability_value, weighted_liability, unrealized_pnl,
    maintenance, shortfall, flags, actionable, breakdown, cycle_id, updated_at)
    VALUES (:account, NULL, NULL, 0, 0, 0, 0, 0, 0, :shortfall, :flags, false, NULL, 1,
    CURRENT_TIMESTAMP)"""


async def listing_rows(url: str) -> list[tuple[str, Decimal]]:
    engine = create_store_engine(url)
    try:
        async with engine.connect() as conn:
            query = sa.text("SELECT account, shortfall FROM health_listing ORDER BY account")
            rows = (await conn.execute(query)).all()
    finally:
        await engine.dispose()
    return [(account, Decimal(str(shortfall))) for account, shortfall in rows]


async def test_listing_revision_up_and_down(database_url: str) -> None:
    """0010 moves the listing out of ``account_health``'s partial index into its own table,
    filled with exactly the listed rows (liquidatable or unknown), and back."""
    old_index = "ix_account_health_liquidatable"
    await migrate(database_url, "0009")
    engine = create_store_engine(database_url)
    try:
        async with engine.begin() as conn:
            seeded = [
                {"account": "0xa", "shortfall": 0, "flags": 0},  # healthy
                {"account": "0xb", "shortfall": 12.5, "flags": int(Flag.LIQUIDATABLE)},
                {"account": "0xc", "shortfall": 0, "flags": int(Flag.DEBT_UNKNOWN)},
                {"account": "0xd", "shortfall": 0, "flags": int(Flag.STALE_PRICE)},
            ]
            await conn.execute(sa.text(HEALTH_AT_0009), seeded)
    finally:
        await engine.dispose()
    assert old_index in await index_names(database_url, "account_health")
    up = await migrate(database_url, "0010")
    assert (up.before, up.direction) == ("0009", "upgrade")
    assert await listing_rows(database_url) == [("0xb", Decimal("12.5")), ("0xc", Decimal(0))]
    assert await index_names(database_url, "account_health") == []
    assert await index_names(database_url, "health_listing") == ["ix_health_listing_ranking"]
    down = await migrate(database_url, "-1")
    assert (down.before, down.direction) == ("0010", "downgrade")
    assert "health_listing" not in await table_names(database_url)
    assert await index_names(database_url, "account_health") == [old_index]
    await migrate(database_url)
    assert await table_names(database_url) == TABLES


async def test_migrated_schema_matches_the_code(database_url: str) -> None:
    await migrate(database_url)
    engine = create_store_engine(database_url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(
                    MigrationContext.configure(c, opts={"compare_type": True}), metadata
                )
            )
            assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()
    assert diff == []


async def test_store_refuses_a_database_that_is_not_at_head(database_url: str) -> None:
    with pytest.raises(SchemaNotCurrent, match="crossmargin migrate") as caught:
        await HealthStore.open(database_url)
    assert caught.value.current is None
    assert caught.value.expected == head_revision()


async def test_unknown_revision_is_a_migration_error(database_url: str) -> None:
    with pytest.raises(MigrationFailed, match="nope"):
        await migrate(database_url, "nope")


async def test_unreachable_database_is_redacted() -> None:
    url = "postgresql+asyncpg://keeper:hunter2@127.0.0.1:1/crossmargin"
    with pytest.raises(StoreUnavailable) as caught:
        await HealthStore.open(url)
    assert "hunter2" not in str(caught.value)
    assert "127.0.0.1:1" in str(caught.value)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_sql_is_rendered_offline(dialect: str) -> None:
    url = "postgresql://u:p@nowhere/db" if dialect == "postgresql" else "sqlite:///x.sqlite3"
    up = migration_sql(url)
    assert "CREATE TABLE account_health" in up
    assert ("NUMERIC(78, 0)" in up) is (dialect == "postgresql")
    assert "DROP TABLE balances" in migration_sql(url, "base")


# ---- the command and the config ---------------------------------------------------------------


def write_config(directory: Path, extra: str = "") -> Path:
    path = directory / "crossmargin.yaml"
    path.write_text(CONFIG + extra, encoding="utf-8")
    return path


def run_cli(*argv: str) -> int:
    # main() calls asyncio.run(); keep it off the test's running loop.
    return main(list(argv))


async def test_migrate_command_defaults_to_sqlite_next_to_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    assert await asyncio.to_thread(run_cli, "migrate", "-c", str(config)) == 0
    out = capsys.readouterr().out
    assert f"upgrade base -> {head_revision()}" in out
    assert (tmp_path / "crossmargin.sqlite3").exists()
    assert await asyncio.to_thread(run_cli, "migrate", "-c", str(config)) == 0
    assert f"already at {head_revision()}" in capsys.readouterr().out
    assert await asyncio.to_thread(run_cli, "migrate", "-c", str(config), "--revision", "x") == 1
    assert "Can't locate revision" in capsys.readouterr().err


async def test_migrate_command_unreachable_database_exits_1_with_one_redacted_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "postgresql://keeper:hunter2@127.0.0.1:1/crossmargin"
    config = write_config(tmp_path, f"database_url: {url}\n")
    assert await asyncio.to_thread(run_cli, "migrate", "-c", str(config)) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "hunter2" not in err
    assert "keeper" not in err
    assert err.startswith("crossmargin: database postgresql+asyncpg://127.0.0.1:1/…#")


def test_database_url_in_the_config(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    assert load_config(path).database_url == (
        f"sqlite+aiosqlite:///{(tmp_path / 'crossmargin.sqlite3').resolve().as_posix()}"
    )
    data = load_config(path).model_dump(exclude={"database_url"}, exclude_defaults=True)
    assert parse_config(data).database_url == "sqlite+aiosqlite:///crossmargin.sqlite3"
    given = parse_config({**data, "database_url": "postgres://u:p@db:5432/risk"})
    assert given.database_url == "postgresql+asyncpg://u:p@db:5432/risk"
    with pytest.raises(ConfigError, match="database_url") as caught:
        parse_config({**data, "database_url": "mysql://u:hunter2@db/risk"})
    assert "hunter2" not in str(caught.value)
