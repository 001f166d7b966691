"""Block-pinned reads of an Aave v3 market, batched through ``aggregate3``.

``read_market`` is two rounds at one block hash (three when a reserve was listed since the
last read): (1) the oracle address (``getPriceOracle``), the reserves list, the e-mode
categories known; (2) per reserve ``getReserveData`` (configuration, id, tokens),
``getAssetPrice`` and the total supply of each debt token, and the e-mode price sources'
prices. ``read_users`` is one round per group of users at the same block:
``getUserConfiguration``, ``getUserEMode`` and ``balanceOf`` of each aToken and of each debt
token that has any supply (a debt token with zero total supply owes nobody anything). Groups
run concurrently, so one group is evaluated while the node answers the next.

Every value is read at the pinned block, so they are one consistent state of the chain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from chains.blocks import BlockRef
from venues.aave.account import EModeCategory, ReserveState, UserBalances, UserState
from venues.aave.bitmaps import ReserveParams
from venues.abi import (
    WORD,
    address_array,
    address_word,
    as_address,
    calldata,
    selector,
    text,
    uint_word,
    word,
    words,
)
from venues.batch import ACCOUNT_ARG_PAD, Call, PinnedCaller, account_call_prefix
from venues.errors import VenueReadFailed, VenueSetupError

ZERO_ADDRESS = "0x" + "0" * 40
RESERVE_DATA_WORDS = 15
EMODE_HEAD_WORDS = 5  # tuple offset, ltv, threshold, bonus, price source (then the label)


@dataclass(frozen=True, slots=True)
class AaveMarketAddresses:
    """The contracts behind a PoolAddressesProvider."""

    provider: str
    pool: str
    oracle: str
    base_currency: str
    base_currency_unit: int


@dataclass(slots=True)
class AaveSnapshot:
    """The market at one block: reserves, e-mode categories, underlying symbols, and per
    reserve whether its (stable, variable) debt token has any supply (a debt token with zero
    total supply owes nobody anything: users' balances of it are not read)."""

    block: BlockRef
    addresses: AaveMarketAddresses
    reserves: list[ReserveState]
    emodes: dict[int, EModeCategory]
    symbols: dict[str, str | None] = field(default_factory=dict)
    debt_supply: dict[str, tuple[bool, bool]] = field(default_factory=dict)


class AaveReader:
    """Reads an Aave v3 market pinned to blocks; caches what never changes (token addresses
    of a listed reserve, symbols)."""

    def __init__(self, *, venue: str, provider: str, caller: PinnedCaller) -> None:
        self.venue = venue
        self.provider = provider.lower()
        self._caller = caller
        self.addresses: AaveMarketAddresses | None = None
        self._tokens: dict[str, tuple[str, str, str]] = {}  # asset → (aToken, stable, variable)
        self.symbols: dict[str, str | None] = {}
        self._emode_ids: set[int] = set()

    @property
    def token_addresses(self) -> list[str]:
        """Every aToken of the listed reserves (for ``BalanceTransfer`` discovery)."""
        return [tokens[0] for tokens in self._tokens.values()]

    async def setup(self, block: BlockRef, has_code: dict[str, bool]) -> AaveMarketAddresses:
        """Resolve and check the market's contracts; ``VenueSetupError`` names what is wrong.

        ``has_code`` tells, per address checked by the caller, whether it holds code.
        """
        if not has_code.get(self.provider, False):
            raise VenueSetupError(
                self.venue, f"no contract code at pool_addresses_provider {self.provider}"
            )
        first = await self._call(
            [
                (self.provider, calldata("getPool()")),
                (self.provider, calldata("getPriceOracle()")),
            ],
            block,
        )
        pool_word, oracle_word = word(first[0]), word(first[1])
        if pool_word is None or oracle_word is None or pool_word == 0 or oracle_word == 0:
            raise VenueSetupError(
                self.venue,
                f"{self.provider} does not answer getPool()/getPriceOracle() "
                "like an Aave v3 PoolAddressesProvider",
            )
        pool, oracle = as_address(pool_word), as_address(oracle_word)
        second = await self._call(
            [
                (pool, calldata("getReservesList()")),
                (oracle, calldata("BASE_CURRENCY()")),
                (oracle, calldata("BASE_CURRENCY_UNIT()")),
            ],
            block,
        )
        reserves = address_array(second[0])
        base_currency, base_unit = word(second[1]), word(second[2])
        if reserves is None:
            raise VenueSetupError(
                self.venue, f"pool {pool} does not answer getReservesList() like an Aave v3 Pool"
            )
        if base_currency is None or not base_unit:
            raise VenueSetupError(
                self.venue, f"price oracle {oracle} does not answer like an AaveOracle"
            )
        self.addresses = AaveMarketAddresses(
            provider=self.provider,
            pool=pool,
            oracle=oracle,
            base_currency=as_address(base_currency),
            base_currency_unit=base_unit,
        )
        await self._learn_reserves(reserves, block)
        return self.addresses

    async def read_market(self, block: BlockRef) -> AaveSnapshot:
        """The market at ``block``: reserves (configuration, id, tokens, price, whether each
        debt token has any supply), e-mode categories and their prices. Two rounds."""
        addresses = self.addresses
        if addresses is None:
            raise RuntimeError("AaveReader.setup() was not called")
        pool = addresses.pool
        known_emodes = sorted(self._emode_ids)
        first = await self._call(
            [
                (self.provider, calldata("getPriceOracle()")),
                (pool, calldata("getReservesList()")),
                *[
                    (pool, calldata("getEModeCategoryData(uint8)", uint_word(i)))
                    for i in known_emodes
                ],
            ],
            block,
        )
        oracle_word, reserves = word(first[0]), address_array(first[1])
        if oracle_word is None or reserves is None:
            raise VenueReadFailed(self.venue, "getPriceOracle()/getReservesList() failed")
        oracle = as_address(oracle_word)
        if oracle != addresses.oracle:
            addresses = self.addresses = AaveMarketAddresses(
                addresses.provider,
                pool,
                oracle,
                addresses.base_currency,
                addresses.base_currency_unit,
            )
        await self._learn_reserves(reserves, block)
        heads = (words(d, EMODE_HEAD_WORDS) for d in first[2:])
        categories = dict(zip(known_emodes, heads, strict=True))

        calls: list[Call] = []
        for asset in reserves:
            _, stable, variable = self._tokens[asset]
            calls += [
                (pool, calldata("getReserveData(address)", address_word(asset))),
                (oracle, calldata("getAssetPrice(address)", address_word(asset))),
                (stable, calldata("totalSupply()")),
                (variable, calldata("totalSupply()")),
            ]
        sources = sorted({as_address(h[4]) for h in categories.values() if h and h[4]})
        calls += [(oracle, calldata("getAssetPrice(address)", address_word(s))) for s in sources]
        results = await self._call(calls, block)
        states: list[ReserveState] = []
        debt_supply: dict[str, tuple[bool, bool]] = {}
        for i, asset in enumerate(reserves):
            data = words(results[4 * i], RESERVE_DATA_WORDS)
            price = word(results[4 * i + 1])
            if data is None or price is None:
                raise VenueReadFailed(self.venue, f"getReserveData/getAssetPrice({asset}) failed")
            debt_supply[asset] = (word(results[4 * i + 2]) != 0, word(results[4 * i + 3]) != 0)
            a_token, stable, variable = self._tokens[asset]
            states.append(
                ReserveState(
                    id=data[7],
                    asset=asset,
                    params=ReserveParams.decode(data[0]),
                    a_token=a_token,
                    stable_debt_token=stable,
                    variable_debt_token=variable,
                    price=price,
                )
            )
        source_prices = dict(zip(sources, results[4 * len(reserves) :], strict=True))
        emodes = {
            i: _emode(self.venue, i, head, source_prices)
            for i, head in categories.items()
            if head and head[2]
        }
        self._emode_ids.update(s.params.emode_category for s in states if s.params.emode_category)
        return AaveSnapshot(
            block=block,
            addresses=addresses,
            reserves=states,
            emodes=emodes,
            symbols=dict(self.symbols),
            debt_supply=debt_supply,
        )

    async def read_users(
        self, accounts: Sequence[str], market: AaveSnapshot
    ) -> dict[str, UserState | None]:
        """``accounts`` at the market's block: configuration, e-mode and the balance of each
        aToken and each debt token with any supply. One round (two when a user sits in an
        e-mode category not read yet; it is added to ``market.emodes``)."""
        tuples, layout = self._user_calls(accounts, market)
        results = await self._caller.call_encoded(tuples, market.block)
        users = self._users(accounts, market.reserves, layout, results)
        missing = {
            u.emode for u in users.values() if u and u.emode and u.emode not in market.emodes
        }
        if missing:
            self._emode_ids.update(missing)
            addresses = market.addresses
            found = await self._emodes(
                sorted(missing), addresses.pool, addresses.oracle, market.block
            )
            market.emodes.update(found)
        return users

    # -- internals ----------------------------------------------------------------------------

    def _user_calls(
        self, accounts: Sequence[str], market: AaveSnapshot
    ) -> tuple[list[str], list[tuple[int, str]]]:
        """Per-user ``Call3`` tuples, pre-encoded, and what each reads: ``(slot, asset)`` with
        slot 0/1 the configuration/e-mode, then 2/3/4 the aToken/stable/variable balance."""
        pool = self.addresses.pool if self.addresses else ""
        balance_of = selector("balanceOf(address)")
        layout: list[tuple[int, str]] = [(0, ""), (1, "")]
        prefixes = [
            account_call_prefix(pool, selector("getUserConfiguration(address)")),
            account_call_prefix(pool, selector("getUserEMode(address)")),
        ]
        for reserve in market.reserves:
            asset, a_token = reserve.asset, reserve.a_token
            stable, variable = reserve.stable_debt_token, reserve.variable_debt_token
            has_stable, has_variable = market.debt_supply.get(asset, (True, True))
            for slot, token, wanted in (
                (2, a_token, True),
                (3, stable, has_stable),
                (4, variable, has_variable),
            ):
                if wanted:
                    layout.append((slot, asset))
                    prefixes.append(account_call_prefix(token, balance_of))
        tuples: list[str] = []
        for account in accounts:
            who = address_word(account) + ACCOUNT_ARG_PAD
            tuples += [prefix + who for prefix in prefixes]
        return tuples, layout

    @staticmethod
    def _users(
        accounts: Sequence[str],
        states: Sequence[ReserveState],
        layout: Sequence[tuple[int, str]],
        results: Sequence[bytes | None],
    ) -> dict[str, UserState | None]:
        ids = {s.asset: s.id for s in states}
        per_user = len(layout)
        slots = [(slot, ids[asset] if asset else -1) for slot, asset in layout]
        users: dict[str, UserState | None] = {}
        from_bytes = int.from_bytes
        for n, account in enumerate(accounts):
            returned = results[n * per_user : (n + 1) * per_user]
            if any(d is None or len(d) < WORD for d in returned):
                users[account] = None
                continue
            values = [from_bytes(d[:WORD], "big") for d in returned if d is not None]
            balances: dict[int, list[int]] = {}
            for (slot, reserve_id), value in zip(slots[2:], values[2:], strict=True):
                if value:
                    balances.setdefault(reserve_id, [0, 0, 0])[slot - 2] = value
            users[account] = UserState(
                config=values[0],
                emode=values[1],
                balances={
                    reserve_id: UserBalances(a_token=b[0], stable_debt=b[1], variable_debt=b[2])
                    for reserve_id, b in balances.items()
                },
            )
        return users

    async def _learn_reserves(self, reserves: Sequence[str], block: BlockRef) -> None:
        """Token addresses and symbols of reserves not seen before."""
        new = [asset for asset in reserves if asset not in self._tokens]
        if not new or self.addresses is None:
            return
        pool = self.addresses.pool
        calls: list[Call] = []
        for asset in new:
            calls.append((pool, calldata("getReserveData(address)", address_word(asset))))
            calls.append((asset, calldata("symbol()")))
        results = await self._call(calls, block)
        for i, asset in enumerate(new):
            data = words(results[2 * i], RESERVE_DATA_WORDS)
            if data is None:
                raise VenueReadFailed(self.venue, f"getReserveData({asset}) failed")
            self._tokens[asset] = (as_address(data[8]), as_address(data[9]), as_address(data[10]))
            self.symbols[asset] = text(results[2 * i + 1])
            if (category := ReserveParams.decode(data[0]).emode_category) != 0:
                self._emode_ids.add(category)

    async def _emodes(
        self, ids: Sequence[int], pool: str, oracle: str, block: BlockRef
    ) -> dict[int, EModeCategory]:
        results = await self._call(
            [(pool, calldata("getEModeCategoryData(uint8)", uint_word(i))) for i in ids], block
        )
        heads = {i: words(d, EMODE_HEAD_WORDS) for i, d in zip(ids, results, strict=True)}
        sources = sorted({as_address(h[4]) for h in heads.values() if h and h[4]})
        prices = await self._call(
            [(oracle, calldata("getAssetPrice(address)", address_word(s))) for s in sources], block
        )
        source_prices = dict(zip(sources, prices, strict=True))
        return {i: _emode(self.venue, i, h, source_prices) for i, h in heads.items() if h and h[2]}

    async def _call(self, calls: Sequence[Call], block: BlockRef) -> list[bytes | None]:
        return await self._caller.call_many(calls, block)


def _emode(
    venue: str, category: int, head: tuple[int, ...], source_prices: dict[str, bytes | None]
) -> EModeCategory:
    source = as_address(head[4])
    price = 0
    if source != ZERO_ADDRESS:
        read = word(source_prices.get(source))
        if read is None:
            raise VenueReadFailed(venue, f"e-mode {category} price source {source} has no price")
        price = read
    return EModeCategory(
        id=category,
        ltv=head[1],
        liquidation_threshold=head[2],
        liquidation_bonus=head[3],
        price_source=source,
        price=price,
    )
