"""``crossmargin check`` probes every venue on the real contracts: a good Aave market and a
good Morpho answer with their reserves/markets; an address without code, the wrong contract
and a market id that does not exist each fail their row with one line naming the venue."""

from __future__ import annotations

from pathlib import Path

from daemon.commands.check import CheckStatus, run_checks
from daemon.config.load import parse_config
from devnet.aave import deploy_aave_market
from devnet.morpho import DEFAULT_MARKETS, deploy_morpho
from tests.venues.venuekit import venue_chain

CHAIN_ID = 1041


async def test_check_probes_every_venue(tmp_path: Path) -> None:
    async with venue_chain(CHAIN_ID) as (_, dev, _pool):
        aave = await deploy_aave_market(dev)
        morpho = await deploy_morpho(dev, markets=DEFAULT_MARKETS[:1])
        market = morpho.markets[0]
        no_code = "0x" + "12" * 20
        config = parse_config(
            {
                "chains": [{"name": "v", "chain_id": CHAIN_ID, "rpc_urls": [dev.url]}],
                "database_url": f"sqlite+aiosqlite:///{tmp_path}/check.sqlite3",
                "venues": [
                    {
                        "name": "aave-ok",
                        "kind": "aave_v3",
                        "chain": "v",
                        "pool_addresses_provider": aave.provider.address,
                    },
                    {
                        "name": "morpho-ok",
                        "kind": "morpho_blue",
                        "chain": "v",
                        "morpho": morpho.morpho.address,
                        "markets": [market.id],
                    },
                    {
                        "name": "aave-typo",
                        "kind": "aave_v3",
                        "chain": "v",
                        "pool_addresses_provider": no_code,
                    },
                    {  # a contract, but not a PoolAddressesProvider
                        "name": "aave-wrong",
                        "kind": "aave_v3",
                        "chain": "v",
                        "pool_addresses_provider": market.loan.address,
                    },
                    {
                        "name": "morpho-no-market",
                        "kind": "morpho_blue",
                        "chain": "v",
                        "morpho": morpho.morpho.address,
                        "markets": ["0x" + "ab" * 32],
                    },
                ],
            }
        )
        rows = {
            r.component.split(" ")[3]: r
            for r in await run_checks(config, timeout_s=20)
            if " venue " in r.component
        }
    assert rows["aave-ok"].status is CheckStatus.OK
    assert "4 reserves, 1 e-mode categories, every price answered" in rows["aave-ok"].detail
    assert (rows["morpho-ok"].status, rows["morpho-ok"].detail) == (
        CheckStatus.OK,
        "1 market(s), every oracle answered",
    )
    assert (rows["aave-typo"].status, rows["aave-typo"].detail) == (
        CheckStatus.FAIL,
        f"venue aave-typo: no contract code at pool_addresses_provider {no_code}",
    )
    assert rows["aave-wrong"].status is CheckStatus.FAIL
    assert rows["aave-wrong"].detail.startswith("venue aave-wrong: ")
    assert (rows["morpho-no-market"].status, rows["morpho-no-market"].detail) == (
        CheckStatus.FAIL,
        f"venue morpho-no-market: market 0x{'ab' * 32} does not exist",
    )
