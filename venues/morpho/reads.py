"""Block-pinned reads of Morpho Blue markets, batched through ``aggregate3``.

Two rounds at the same block hash: (1) each market's ``market(id)`` totals and its oracle's
``price()``, and every (account, market) ``position``; (2) each IRM's ``borrowRateView`` on
the market state read in (1) — the rate ``_accrueInterest`` would use — for markets with
time elapsed since their last update. Market params (``idToMarketParams``) and token
decimals/symbols are read once per market and cached: they never change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from chains.blocks import BlockRef
from venues.abi import (
    address_word,
    as_address,
    bytes32_word,
    calldata,
    text,
    uint_word,
    word,
    words,
)
from venues.batch import Call, PinnedCaller
from venues.errors import VenueReadFailed, VenueSetupError
from venues.morpho.market import MarketParams, MarketState, Position

ZERO_ADDRESS = "0x" + "0" * 40
BORROW_RATE_VIEW = (
    "borrowRateView((address,address,address,address,uint256),"
    "(uint128,uint128,uint128,uint128,uint128,uint128))"
)


@dataclass(frozen=True, slots=True)
class MarketInfo:
    """A market's params and its tokens' decimals/symbols (``None`` when unreadable)."""

    id: str
    params: MarketParams
    loan_decimals: int | None
    collateral_decimals: int | None
    loan_symbol: str | None
    collateral_symbol: str | None


@dataclass(frozen=True, slots=True)
class MarketAtBlock:
    """A market at the block: the stored state, the oracle price (1e36) and the IRM rate."""

    info: MarketInfo
    state: MarketState
    price: int | None
    borrow_rate: int


@dataclass(slots=True)
class MorphoSnapshot:
    """Markets and positions at one block; ``positions[account]`` is ``None`` when one of the
    account's calls failed."""

    block: BlockRef
    markets: dict[str, MarketAtBlock]
    positions: dict[str, dict[str, Position] | None]


class MorphoReader:
    """Reads Morpho Blue pinned to blocks."""

    def __init__(self, *, venue: str, morpho: str, caller: PinnedCaller) -> None:
        self.venue = venue
        self.morpho = morpho.lower()
        self._caller = caller
        self.markets: dict[str, MarketInfo] = {}

    async def check(self, block: BlockRef, code: bool) -> None:
        """``VenueSetupError`` unless ``morpho`` answers like Morpho Blue."""
        if not code:
            raise VenueSetupError(self.venue, f"no contract code at morpho {self.morpho}")
        zero = bytes32_word("0x")
        results = await self._caller.call_many(
            [
                (self.morpho, calldata("market(bytes32)", zero)),
                (self.morpho, calldata("idToMarketParams(bytes32)", zero)),
                (self.morpho, calldata("feeRecipient()")),
            ],
            block,
        )
        if words(results[0], 6) is None or words(results[1], 5) is None or word(results[2]) is None:
            raise VenueSetupError(
                self.venue,
                f"{self.morpho} does not answer market()/idToMarketParams() like Morpho Blue",
            )

    async def learn(self, ids: Sequence[str], block: BlockRef) -> None:
        """Read and cache params and token details of markets not seen yet."""
        new = sorted({i for i in ids if i not in self.markets})
        if not new:
            return
        results = await self._caller.call_many(
            [(self.morpho, calldata("idToMarketParams(bytes32)", bytes32_word(i))) for i in new],
            block,
        )
        params: dict[str, MarketParams] = {}
        for market_id, data in zip(new, results, strict=True):
            values = words(data, 5)
            if values is None:
                raise VenueReadFailed(self.venue, f"idToMarketParams({market_id}) failed")
            if values[4] == 0:  # never created: no params (a wrong id in the config)
                raise VenueSetupError(self.venue, f"market {market_id} does not exist")
            params[market_id] = MarketParams(
                loan_token=as_address(values[0]),
                collateral_token=as_address(values[1]),
                oracle=as_address(values[2]),
                irm=as_address(values[3]),
                lltv=values[4],
            )
        self.add_markets(params, await self._token_details(params.values(), block))

    def add_markets(
        self,
        params: Mapping[str, MarketParams],
        details: Mapping[str, tuple[int | None, str | None]],
    ) -> None:
        """Cache markets whose params are known (``CreateMarket`` logs carry them)."""
        for market_id, p in params.items():
            loan = details.get(p.loan_token, (None, None))
            coll = details.get(p.collateral_token, (None, None))
            self.markets[market_id] = MarketInfo(market_id, p, loan[0], coll[0], loan[1], coll[1])

    async def _token_details(
        self, params: Iterable[MarketParams], block: BlockRef
    ) -> dict[str, tuple[int | None, str | None]]:
        tokens = sorted({t for p in params for t in (p.loan_token, p.collateral_token)})
        calls: list[Call] = []
        for token in tokens:
            calls += [(token, calldata("decimals()")), (token, calldata("symbol()"))]
        results = await self._caller.call_many(calls, block)
        details: dict[str, tuple[int | None, str | None]] = {}
        for i, token in enumerate(tokens):
            decimals = word(results[2 * i])
            details[token] = (
                decimals if decimals is not None and decimals <= 77 else None,
                text(results[2 * i + 1]),
            )
        return details

    async def read(self, pairs: Mapping[str, Sequence[str]], block: BlockRef) -> MorphoSnapshot:
        """Markets and the positions of ``pairs`` (account → market ids) at ``block``."""
        market_ids = sorted({m for ids in pairs.values() for m in ids})
        await self.learn(market_ids, block)
        calls: list[Call] = []
        for market_id in market_ids:
            info = self.markets[market_id]
            calls.append((self.morpho, calldata("market(bytes32)", bytes32_word(market_id))))
            calls.append((info.params.oracle, calldata("price()")))
        layout = [(a, m) for a, ids in pairs.items() for m in ids]
        calls += [
            (self.morpho, calldata("position(bytes32,address)", bytes32_word(m), address_word(a)))
            for a, m in layout
        ]
        results = await self._caller.call_many(calls, block)
        states: dict[str, tuple[MarketState, int | None]] = {}
        for i, market_id in enumerate(market_ids):
            values = words(results[2 * i], 6)
            if values is None:
                raise VenueReadFailed(self.venue, f"market({market_id}) failed")
            states[market_id] = (MarketState(*values), word(results[2 * i + 1]))
        rates = await self._borrow_rates(states, block)
        markets = {
            m: MarketAtBlock(self.markets[m], state, price, rates.get(m, 0))
            for m, (state, price) in states.items()
        }
        positions: dict[str, dict[str, Position] | None] = {a: {} for a in pairs}
        for (account, market_id), data in zip(layout, results[2 * len(market_ids) :], strict=True):
            values = words(data, 3)
            held = positions[account]
            if values is None or held is None:
                positions[account] = None
                continue
            if any(values):
                held[market_id] = Position(*values)
        return MorphoSnapshot(block=block, markets=markets, positions=positions)

    async def _borrow_rates(
        self, states: Mapping[str, tuple[MarketState, int | None]], block: BlockRef
    ) -> dict[str, int]:
        due = [
            m
            for m, (state, _) in states.items()
            if state.last_update < block.timestamp
            and self.markets[m].params.irm != ZERO_ADDRESS
            and state.total_borrow_assets > 0
        ]
        calls: list[Call] = []
        for market_id in due:
            p, s = self.markets[market_id].params, states[market_id][0]
            args = [
                address_word(p.loan_token),
                address_word(p.collateral_token),
                address_word(p.oracle),
                address_word(p.irm),
                uint_word(p.lltv),
                *(
                    uint_word(v)
                    for v in (
                        s.total_supply_assets,
                        s.total_supply_shares,
                        s.total_borrow_assets,
                        s.total_borrow_shares,
                        s.last_update,
                        s.fee,
                    )
                ),
            ]
            calls.append((p.irm, calldata(BORROW_RATE_VIEW, *args)))
        results = await self._caller.call_many(calls, block)
        rates: dict[str, int] = {}
        for market_id, data in zip(due, results, strict=True):
            rate = word(data)
            if rate is None:
                raise VenueReadFailed(self.venue, f"borrowRateView of market {market_id} failed")
            rates[market_id] = rate
        return rates
