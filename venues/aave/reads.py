"""Block-pinned reads of an Aave v3 market, batched through ``aggregate3``.

One ``read`` is two rounds of batches at the same block hash (three when a user sits in an
e-mode category not seen before, or a reserve was listed since the last read):

1. the oracle address (``getPriceOracle``), the reserves list, the e-mode categories known;
2. per reserve ``getReserveData`` (configuration, id, tokens) and ``getAssetPrice``, the total
   supply of each debt token, e-mode price sources' prices; per user
   ``getUserConfiguration``, ``getUserEMode``, and ``balanceOf`` of each aToken and of each
   debt token that has any supply (a debt token with zero total supply owes nobody anything).

Every value is read at the pinned block, so they are one consistent state of the chain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from chains.blocks import BlockRef
from venues.aave.account import EModeCategory, ReserveState, UserBalances, UserState
from venues.aave.bitmaps import ReserveParams
from venues.abi import (
    address_array,
    address_word,
    as_address,
    calldata,
    text,
    uint_word,
    word,
    words,
)
from venues.batch import Call, PinnedCaller
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
    """Everything read at one block. ``users`` maps an account to its state, or ``None``
    when one of its calls failed (the account's entry is then stale, not zero)."""

    block: BlockRef
    addresses: AaveMarketAddresses
    reserves: list[ReserveState]
    emodes: dict[int, EModeCategory]
    users: dict[str, UserState | None]
    symbols: dict[str, str | None] = field(default_factory=dict)


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
        # asset → (stable, variable) debt token had a non-zero total supply at the last read
        self._debt_supply: dict[str, tuple[bool, bool]] = {}

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

    async def read(self, accounts: Sequence[str], block: BlockRef) -> AaveSnapshot:
        """Read the market and ``accounts`` at ``block`` (see the module docstring)."""
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

        reserve_calls: list[Call] = []
        for asset in reserves:
            _, stable, variable = self._tokens[asset]
            reserve_calls += [
                (pool, calldata("getReserveData(address)", address_word(asset))),
                (oracle, calldata("getAssetPrice(address)", address_word(asset))),
                (stable, calldata("totalSupply()")),
                (variable, calldata("totalSupply()")),
            ]
        sources = sorted({as_address(h[4]) for h in categories.values() if h and h[4]})
        reserve_calls += [
            (oracle, calldata("getAssetPrice(address)", address_word(s))) for s in sources
        ]
        # Which debt tokens to read per user is only known after this round's totals; read
        # users' debts optimistically for tokens whose total supply was non-zero last time.
        read_flags = {asset: self._debt_supply.get(asset, (True, True)) for asset in reserves}
        user_calls, layout = self._user_calls(accounts, reserves)
        results = await self._call(reserve_calls + user_calls, block)
        reserve_results, user_results = results[: len(reserve_calls)], results[len(reserve_calls) :]

        states: list[ReserveState] = []
        for i, asset in enumerate(reserves):
            data = words(reserve_results[4 * i], RESERVE_DATA_WORDS)
            price = word(reserve_results[4 * i + 1])
            if data is None or price is None:
                raise VenueReadFailed(self.venue, f"getReserveData/getAssetPrice({asset}) failed")
            self._debt_supply[asset] = (
                word(reserve_results[4 * i + 2]) != 0,
                word(reserve_results[4 * i + 3]) != 0,
            )
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
        if any(
            (now[0] and not before[0]) or (now[1] and not before[1])
            for asset, before in read_flags.items()
            if (now := self._debt_supply[asset])
        ):
            # A debt token got its first borrower since the last read: read users again with
            # it included (same block, so still one consistent state).
            user_calls, layout = self._user_calls(accounts, reserves)
            user_results = await self._call(user_calls, block)
        source_prices = dict(zip(sources, reserve_results[4 * len(reserves) :], strict=True))
        emodes = {
            i: _emode(self.venue, i, head, source_prices)
            for i, head in categories.items()
            if head and head[2]
        }
        self._emode_ids.update(s.params.emode_category for s in states if s.params.emode_category)
        users = self._users(accounts, reserves, states, layout, user_results)
        missing = {u.emode for u in users.values() if u and u.emode and u.emode not in emodes}
        if missing:
            self._emode_ids.update(missing)
            emodes.update(await self._emodes(sorted(missing), pool, oracle, block))
        return AaveSnapshot(
            block=block,
            addresses=addresses,
            reserves=states,
            emodes=emodes,
            users=users,
            symbols=dict(self.symbols),
        )

    # -- internals ----------------------------------------------------------------------------

    def _user_calls(
        self, accounts: Sequence[str], reserves: Sequence[str]
    ) -> tuple[list[Call], list[tuple[str, str]]]:
        """Per-user calls and, for each, what it reads (``("config"|"emode"|kind, asset)``)."""
        pool = self.addresses.pool if self.addresses else ""
        template: list[tuple[str, str, str]] = []  # (kind, asset, target)
        for asset in reserves:
            a_token, stable, variable = self._tokens[asset]
            has_stable, has_variable = self._debt_supply.get(asset, (True, True))
            template.append(("a", asset, a_token))
            if has_stable:
                template.append(("s", asset, stable))
            if has_variable:
                template.append(("v", asset, variable))
        calls: list[Call] = []
        layout = [("config", ""), ("emode", "")] + [(kind, asset) for kind, asset, _ in template]
        for account in accounts:
            who = address_word(account)
            calls.append((pool, calldata("getUserConfiguration(address)", who)))
            calls.append((pool, calldata("getUserEMode(address)", who)))
            balance_of = calldata("balanceOf(address)", who)
            calls += [(target, balance_of) for _, _, target in template]
        return calls, layout

    def _users(
        self,
        accounts: Sequence[str],
        reserves: Sequence[str],
        states: Sequence[ReserveState],
        layout: Sequence[tuple[str, str]],
        results: Sequence[bytes | None],
    ) -> dict[str, UserState | None]:
        ids = {s.asset: s.id for s in states}
        per_user = len(layout)
        users: dict[str, UserState | None] = {}
        for n, account in enumerate(accounts):
            values = [word(d) for d in results[n * per_user : (n + 1) * per_user]]
            if any(v is None for v in values):
                users[account] = None
                continue
            balances: dict[str, list[int]] = {asset: [0, 0, 0] for asset in reserves}
            for (kind, asset), value in zip(layout[2:], values[2:], strict=True):
                balances[asset]["asv".index(kind)] = value or 0
            users[account] = UserState(
                config=values[0] or 0,
                emode=values[1] or 0,
                balances={
                    ids[asset]: UserBalances(a_token=b[0], stable_debt=b[1], variable_debt=b[2])
                    for asset, b in balances.items()
                    if any(b)
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
