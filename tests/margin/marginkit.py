"""The margin engine and the reference checked against the independent oracle.

``tests/margin_oracle.py`` knows nothing of ``margin``: this module converts the engine's input
objects into the oracle's, keeps a ``Book`` (the test's own record of every input given to an
engine), and compares the numpy engine's ``HealthTable`` rows and the reference's
``AccountHealth`` with what the oracle says.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import replace
from decimal import Decimal
from fractions import Fraction

import numpy as np

from core.domain import Role
from margin.engine import MarginEngine
from margin.health import evaluate_account
from margin.kernel import HealthTable
from margin.model import (
    AccountHealth,
    ChainInput,
    EngineParams,
    Flag,
    Holding,
    MarginModel,
    Position,
    PriceInput,
    Tier,
    TokenRisk,
)
from tests.margin import margin_oracle as oracle
from tests.margin.margin_oracle_numbers import Schedule

REFERENCE_MODELS = (MarginModel.WEIGHTED, MarginModel.TIERED)
"""The models ``margin.health.evaluate_account`` (and the independent oracle) define; the
portfolio model has its own (``tests/margin/portfolio_oracle.py``)."""


def oracle_schedule(tiers: tuple[Tier, ...]) -> Schedule:
    """Tiers as ``((rate, up_to), …)``."""
    return tuple((tier.rate, tier.up_to) for tier in tiers)


def oracle_token(token: TokenRisk) -> oracle.Token:
    """The oracle's view of a token."""
    return oracle.Token(
        chain=token.chain,
        asset=token.asset,
        collateral=token.role is Role.COLLATERAL,
        weight=token.weight,
        decimals=token.decimals,
        tiers=oracle_schedule(token.tiers),
    )


def oracle_price(price: PriceInput) -> oracle.Price:
    """The oracle's view of a price: its band, status and volatility."""
    return oracle.Price(
        low=price.price if price.price_low is None else price.price_low,
        high=price.price if price.price_high is None else price.price_high,
        status=str(price.status.value),
        volatility=price.volatility,
    )


def oracle_chain(chain: ChainInput) -> oracle.Chain:
    """The oracle's view of a chain's status."""
    return oracle.Chain(
        latency_s=chain.liquidation_latency_s,
        stale=chain.stale,
        sequencer_down=chain.sequencer_down,
    )


def oracle_perp(position: Position) -> oracle.Perp:
    """The oracle's view of a position."""
    return oracle.Perp(
        asset=position.asset,
        chain=position.chain,
        size=position.size,
        entry=position.entry_price,
        mmr_tiers=oracle_schedule(position.mmr_tiers),
    )


def oracle_market(
    tokens: Iterable[TokenRisk],
    prices: Mapping[str, PriceInput],
    chains: Mapping[str, ChainInput],
    params: EngineParams,
) -> oracle.Market:
    """The oracle's market from the engine's inputs."""
    return oracle.Market(
        tokens={t.key: oracle_token(t) for t in tokens},
        prices={asset: oracle_price(p) for asset, p in prices.items()},
        chains={name: oracle_chain(c) for name, c in chains.items()},
        tiered=params.model is MarginModel.TIERED,
        z=params.z,
        value_decimals=params.value_decimals,
    )


def flag_set(bits: int) -> frozenset[str]:
    """The names of the flags set in an engine bitmask."""
    return frozenset(f.name or "" for f in Flag if f and f & bits)


# ---- comparisons ----------------------------------------------------------------------------


def _units(value: float | Decimal, what: str, value_decimals: int = 0) -> int:
    exact = Decimal(value).scaleb(value_decimals)
    assert exact == exact.to_integral_value(), f"{what}: {value} is not whole value units"
    return int(exact)


def _assert_ratio(got: float, bounds: tuple[Fraction | float, Fraction | float], what: str) -> None:
    # float() rounds a Fraction correctly, as IEEE division of two exact sums does: monotone,
    # so the engine's ratio lies between the rounded bounds (equal to them when exact)
    lo, hi = (float(b) for b in bounds)
    if math.isnan(lo):  # unknown (R2): NaN, never a number that could be too high
        assert math.isnan(got), f"{what}: got {got!r}, oracle unknown (NaN)"
        return
    assert lo <= got <= hi, f"{what}: got {got!r}, oracle [{lo!r}, {hi!r}]"


def _assert_flags(got: frozenset[str], actionable: bool, want: oracle.Health, what: str) -> None:
    assert want.flags <= got <= want.possible_flags, (
        f"{what}: flags {sorted(got)}, oracle {sorted(want.flags)}"
        + (f" (maybe {sorted(want.possible_flags)})" if want.possible_flags != want.flags else "")
    )
    if want.actionable is not None:
        assert actionable is want.actionable, f"{what}: actionable {actionable}"


def assert_row_matches(table: HealthTable, i: int, want: oracle.Health, what: str) -> None:
    """Row ``i`` of the engine's numpy results agrees with the oracle."""
    for name, units in want.money.items():
        got = _units(float(getattr(table, name)[i]), f"{what} {name}")
        assert got in units, f"{what}: {name} engine {got}, oracle {units.lo}..{units.hi}"
    _assert_ratio(float(table.health[i]), want.health, f"{what} health")
    _assert_ratio(float(table.health_latency[i]), want.health_latency, f"{what} health_latency")
    _assert_flags(flag_set(int(table.flags[i])), bool(table.actionable[i]), want, what)


def assert_reference_matches(ref: AccountHealth, want: oracle.Health, value_decimals: int) -> None:
    """The reference's result and breakdown agree with the oracle."""
    what = f"reference {ref.account}"
    for name, units in want.money.items():
        got = _units(getattr(ref, name), f"{what} {name}", value_decimals)
        assert got in units, f"{what}: {name} {got}, oracle {units.lo}..{units.hi}"
    _assert_ratio(ref.health, want.health, f"{what} health")
    _assert_ratio(ref.health_latency, want.health_latency, f"{what} health_latency")
    _assert_flags(flag_set(ref.flags), ref.actionable, want, what)
    shown = {(h.chain, h.token): h for h in ref.holdings}
    # zero balances are left out, unless their latest read failed
    listed = {key for key, line in want.holdings.items() if line.raw or "READ_FAILED" in line.flags}
    assert set(shown) == listed, f"{what}: breakdown lines {sorted(shown)}, want {sorted(listed)}"
    bucket_sums: dict[tuple[str, Schedule], int] = {}
    for key, line in shown.items():
        expected = want.holdings[key]
        assert line.raw == expected.raw, f"{what}: {key} raw {line.raw}"
        value = _units(line.value, f"{what} {key} value", value_decimals)
        assert value in expected.value, f"{what}: {key} value {value}, oracle {expected.value}"
        weighted = _units(line.weighted_value, f"{what} {key} weighted", value_decimals)
        if expected.bucket is not None:  # a share of a tiered bucket
            bucket_sums[expected.bucket] = bucket_sums.get(expected.bucket, 0) + weighted
        else:
            assert expected.weighted is not None
            assert weighted in expected.weighted, f"{what}: {key} weighted {weighted}"
        assert flag_set(line.flags) == expected.flags, f"{what}: {key} flags"
    for bucket, total in bucket_sums.items():
        assert total in want.buckets[bucket], f"{what}: bucket {bucket} shares add to {total}"
    for position in ref.positions:
        perp = want.perps[position.asset]
        for name, units in (
            ("notional", perp.notional),
            ("unrealized_pnl", perp.pnl),
            ("maintenance", perp.maintenance),
        ):
            got = _units(getattr(position, name), f"{what} {position.asset} {name}", value_decimals)
            assert got in units, f"{what}: {position.asset} {name} {got}, oracle {units}"
        assert flag_set(position.flags) == perp.flags, f"{what}: {position.asset} flags"


# ---- a book: an engine and the test's record of its inputs ----------------------------------


class Book:
    """A ``MarginEngine`` and the test's own record of every input it was given.

    ``holdings`` records each holding's read state as the engine was told it: the last good raw
    balance and block, and whether the latest read failed (``fail``).
    """

    def __init__(
        self,
        tokens: Iterable[TokenRisk],
        chains: Iterable[ChainInput],
        params: EngineParams | None = None,
    ) -> None:
        self.tokens = list(tokens)
        self.token_map = {t.key: t for t in self.tokens}
        self.chains = {c.name: c for c in chains}
        self.params = params or EngineParams()
        self.engine = MarginEngine(
            tokens=self.tokens, chains=self.chains.values(), params=self.params
        )
        self.prices: dict[str, PriceInput] = {}
        self.holdings: dict[str, dict[tuple[str, str], Holding]] = {}
        self.positions: dict[str, dict[str, Position]] = {}

    def __repr__(self) -> str:
        # every input: a failing generated book can be rebuilt from the report
        positions = [p for by_asset in self.positions.values() for p in by_asset.values()]
        return (
            f"Book(params={self.params!r}, tokens={self.tokens!r}, "
            f"chains={list(self.chains.values())!r}, prices={list(self.prices.values())!r}, "
            f"holdings={self.holdings!r}, positions={positions!r})"
        )

    def balance(self, account: str, chain: str, token: str, raw: int, block: int = 1) -> None:
        """Set a raw balance (a good read at ``block``)."""
        self.engine.set_balance(account, chain, token, raw, block)
        self._record(account, chain, token, raw, block)

    def fail(
        self,
        account: str,
        chain: str,
        token: str,
        block: int = 2,
        *,
        orphaned_above: int | None = None,
    ) -> None:
        """A failed read at ``block``: the last good balance stays, unless a reorg orphaned the
        block it was read at (``orphaned_above``); without one the holding was never read."""
        self.engine.set_read_failed(account, chain, token, block, orphaned_above=orphaned_above)
        held = self.holdings.setdefault(account, {}).get((chain, token))
        forgotten = held is not None and orphaned_above is not None and held.block > orphaned_above
        if held is None or held.raw is None or forgotten:
            held = Holding(
                account=account, chain=chain, token=token, raw=None, block=block, read_failed=True
            )
        self.holdings[account][(chain, token)] = replace(held, read_failed=True)

    def _record(self, account: str, chain: str, token: str, raw: int, block: int) -> None:
        holding = Holding(account=account, chain=chain, token=token, raw=raw, block=block)
        self.holdings.setdefault(account, {})[(chain, token)] = holding

    def load(self, chain: str, token: str, raws: Mapping[str, int], block: int = 1) -> None:
        """Set many accounts' balances of one token with ``load_balances`` (uint64 if they fit)."""
        values = list(raws.values())
        column: list[int] | np.ndarray = values
        if values and max(values) < 2**64:
            column = np.array(values, dtype=np.uint64)
        self.engine.load_balances(chain, token, list(raws), column, block)
        for account, raw in raws.items():
            self._record(account, chain, token, raw, block)

    def price(self, *prices: PriceInput) -> None:
        """Set prices."""
        self.engine.set_prices(prices)
        self.prices.update({p.asset: p for p in prices})

    def chain(self, *chains: ChainInput) -> None:
        """Change chain statuses."""
        self.engine.set_chain_status(chains)
        self.chains.update({c.name: c for c in chains})

    def position(self, position: Position) -> None:
        """Open, change or close a position."""
        self.engine.set_position(position)
        self.positions.setdefault(position.account, {})[position.asset] = position

    def expected(self, account: str) -> oracle.Health:
        """What the oracle says about ``account``."""
        market = oracle_market(self.tokens, self.prices, self.chains, self.params)
        perps = [oracle_perp(p) for p in self.positions.get(account, {}).values()]
        reads = {
            key: oracle.Read(h.raw, h.read_failed)
            for key, h in self.holdings.get(account, {}).items()
        }
        return oracle.evaluate(market, reads, perps)

    def reference(self, account: str) -> AccountHealth:
        """What ``margin.health.evaluate_account`` says about ``account`` from the record."""
        return evaluate_account(
            account,
            self.holdings.get(account, {}).values(),
            list(self.positions.get(account, {}).values()),
            tokens=self.token_map,
            prices=self.prices,
            chains=self.chains,
            params=self.params,
        )

    def check(self, *, reference: bool = True) -> dict[str, oracle.Health]:
        """Compare every account's engine row (and the reference) with the oracle."""
        table = self.engine.results
        out = {}
        for i, account in enumerate(self.engine.accounts):
            want = out[account] = self.expected(account)
            assert_row_matches(table, i, want, f"engine {account}")
            if reference:
                assert_reference_matches(self.reference(account), want, self.params.value_decimals)
        return out


def usd(units: int | float, value_decimals: int = 2) -> Decimal:
    """Value units as USD."""
    return Decimal(int(units)).scaleb(-value_decimals)
