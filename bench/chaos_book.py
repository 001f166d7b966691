"""The chaos storm's book and its ground truth, computed outside the daemon.

Every account holds WETH collateral on l1 (weight 0.8) and owes dUSDC on l2 (weight 1.0).
ETH moves between a few price levels, USDC stays at 1, and ``liquidation_latency_s`` is 0 on
both chains, so the only flag an account can truly carry is ``LIQUIDATABLE`` (health < 1): no
latency shock, no stale chain or price, no breaker trip, no sequencer.

Every change the storm makes keeps each account's health at least ``BAND`` away from 1 at
*every* price level, so no reading or price combination lands where rounding could decide a
flag: the expected flags are exact. They come from the independent exact oracle
``tests/margin_oracle.py`` (DESIGN §3 in fractions), fed with balances read from the chains by
this bench at the daemon's own blocks and with the prices the bench set.

Changes are planned here and sent by ``bench/chaos_world.py``: collateral ``transfer``s between
accounts on l1 (sent from the impersonated holder) and debt ``mint``/``burn`` on l2 (each sent
from the account it touches). One change never touches an account twice on one chain, so
while it lands every account is either before or after it: the states the chain passes
through are exactly the snapshots the bench reads.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from devnet.driver import encode_call
from margin.model import Flag
from tests.margin.margin_oracle import Chain, Market, Price, Token, evaluate

ETH_LEVELS = (Decimal(1700), Decimal(2000), Decimal(2300))  # jumps ≤ 35 %: under max_jump
WETH_DECIMALS, DEBT_DECIMALS = 18, 6
WETH_UNIT: int = 10**WETH_DECIMALS
DEBT_UNIT: int = 10**DEBT_DECIMALS
WETH_WEIGHT, DEBT_WEIGHT = 0.8, 1.0
BAND = 0.03  # every health stays this far from 1 at every ETH level
HEALTHY_RANGE = (1.06, 1.8)  # target health bands when a change drives an account (at the
UNDERWATER_RANGE = (0.5, 0.94)  # current price)
COLLATERAL_RANGE = (0.5, 3.0)  # WETH per account at set-up
WETH_STEP = 10**15  # amounts are multiples of 0.001 WETH
PLAN_ATTEMPTS = 60  # random candidates tried per planned account before giving up on it
FLIP_SHARE = 0.6  # share of driven accounts pushed to the other side of the threshold
TX_GAS = 200_000  # explicit gas: anvil_reorg's replacement transactions need it
ERC20 = "MintableERC20"


@dataclass(frozen=True, slots=True)
class Tx:
    """One transaction of a change: ``fn(*args)`` on ``token`` of ``chain``, sent by ``sender``."""

    chain: str
    token: str
    sender: str
    fn: str
    args: tuple[object, ...]

    def request(self) -> dict[str, str]:
        """The ``eth_sendTransaction`` / ``anvil_reorg`` transaction object."""
        data = "0x" + encode_call(ERC20, self.fn, *self.args).hex()
        return {"from": self.sender, "to": self.token, "data": data, "gas": hex(TX_GAS)}


@dataclass(frozen=True, slots=True)
class State:
    """What the flags depend on: every account's raw balances and the ETH price."""

    weth: Mapping[str, int]
    debt: Mapping[str, int]
    eth: Decimal


def health(weth: int, debt: int, eth: Decimal) -> float:
    """Health in floats (planning only; the verdicts come from the exact oracle)."""
    if debt == 0:
        return math.inf
    collateral = weth / WETH_UNIT * float(eth) * WETH_WEIGHT
    return collateral / (debt / DEBT_UNIT * DEBT_WEIGHT)


def clear_of_threshold(weth: int, debt: int) -> bool:
    """Health at least ``BAND`` away from 1 at every ETH level."""
    return all(abs(health(weth, debt, level) - 1) > BAND for level in ETH_LEVELS)


class Truth:
    """Expected flags of one account from balances and prices, by the exact oracle."""

    def __init__(self, weth_token: str, debt_token: str) -> None:
        self.weth_token = weth_token
        self.debt_token = debt_token
        self._tokens = {
            ("l1", weth_token): Token("l1", "ETH", True, WETH_WEIGHT, WETH_DECIMALS),
            ("l2", debt_token): Token("l2", "USDC", False, DEBT_WEIGHT, DEBT_DECIMALS),
        }
        self._chains = {"l1": Chain(latency_s=0.0), "l2": Chain(latency_s=0.0)}
        self._cache: dict[tuple[int, int, Decimal], Flag] = {}

    def flags(self, weth: int, debt: int, eth: Decimal) -> Flag:
        """The flags the daemon must show (``AmbiguousTruth`` if float64 could decide either
        way: the storm's band is meant to rule that out)."""
        key = (weth, debt, eth)
        found = self._cache.get(key)
        if found is not None:
            return found
        price = float(eth)
        market = Market(
            tokens=self._tokens,
            prices={"ETH": Price(price, price), "USDC": Price(1.0, 1.0)},
            chains=self._chains,
        )
        verdict = evaluate(market, {("l1", self.weth_token): weth, ("l2", self.debt_token): debt})
        if verdict.flags != verdict.possible_flags:
            raise AmbiguousTruth(f"weth={weth} debt={debt} eth={eth}: {verdict.possible_flags}")
        flags = Flag.NONE
        for name in verdict.flags:
            flags |= Flag[name]
        self._cache[key] = flags
        return flags

    def possible(self, weth: int, debt: int, eth: Decimal) -> set[int]:
        """The flag values the daemon may show for these inputs: one, or both sides of the
        threshold where float64 could decide either way (only mixes of balances from
        different moments can land there)."""
        try:
            return {int(self.flags(weth, debt, eth))}
        except AmbiguousTruth:
            return {int(Flag.NONE), int(Flag.LIQUIDATABLE)}

    def health_bounds(self, weth: int, debt: int, eth: Decimal) -> tuple[float, float]:
        """The oracle's exact bounds on the health the daemon may report (∞ without debt)."""
        price = float(eth)
        market = Market(
            tokens=self._tokens,
            prices={"ETH": Price(price, price), "USDC": Price(1.0, 1.0)},
            chains=self._chains,
        )
        verdict = evaluate(market, {("l1", self.weth_token): weth, ("l2", self.debt_token): debt})
        low, high = verdict.health
        return float(low), float(high)

    def all_flags(self, state: State) -> dict[str, Flag]:
        """Expected flags of every account in ``state``."""
        return {a: self.flags(state.weth[a], state.debt[a], state.eth) for a in state.weth}


class AmbiguousTruth(Exception):
    """An account landed where float64 rounding could set or clear a flag."""


@dataclass
class Legit:
    """Every value each input took during one stretch of the storm: the flags an account may
    legitimately have shown at some moment of it are the flags of any combination."""

    weth: dict[str, set[int]] = field(default_factory=dict)
    debt: dict[str, set[int]] = field(default_factory=dict)
    eth: set[Decimal] = field(default_factory=set)

    def add(self, state: State) -> None:
        """Record a state the chains and the price sources were in."""
        for account, raw in state.weth.items():
            self.weth.setdefault(account, set()).add(raw)
        for account, raw in state.debt.items():
            self.debt.setdefault(account, set()).add(raw)
        self.eth.add(state.eth)

    def add_chain(self, chain: str, balances: Mapping[str, int]) -> None:
        """Record one chain's balances (a snapshot of the other chain is not needed)."""
        target = self.weth if chain == "l1" else self.debt
        for account, raw in balances.items():
            target.setdefault(account, set()).add(raw)

    def merge(self, other: Legit) -> None:
        """Take in another stretch's values (an unsettled episode runs into the next)."""
        for mine, theirs in ((self.weth, other.weth), (self.debt, other.debt)):
            for account, values in theirs.items():
                mine.setdefault(account, set()).update(values)
        self.eth |= other.eth

    def flags(self, truth: Truth, account: str) -> set[int]:
        """Every flag value ``account`` may have shown during the stretch."""
        return {
            flags
            for w in self.weth.get(account, ())
            for d in self.debt.get(account, ())
            for p in self.eth
            for flags in truth.possible(w, d, p)
        }


class Planner:
    """Random changes that drive accounts across the threshold and keep them clear of it."""

    def __init__(self, rng: random.Random, weth_token: str, debt_token: str) -> None:
        self.rng = rng
        self.weth_token = weth_token
        self.debt_token = debt_token

    def initial(self, accounts: Sequence[str], eth: Decimal) -> dict[str, tuple[int, int]]:
        """(WETH raw, debt raw) per account, about half of them under water at ``eth``."""
        book: dict[str, tuple[int, int]] = {}
        for account in accounts:
            weth = self._weth(self.rng.uniform(*COLLATERAL_RANGE))
            debt = self._debt_for(weth, eth, under=self.rng.random() < 0.5)
            if debt is None:
                raise RuntimeError(f"no clear starting debt for {weth} WETH")
            book[account] = (weth, debt)
        return book

    def price_move(self, state: State) -> Decimal:
        """Another ETH level, one that flips at least one account if any does."""
        levels = [level for level in ETH_LEVELS if level != state.eth]
        self.rng.shuffle(levels)
        for level in levels:
            if any(
                (health(state.weth[a], state.debt[a], level) < 1)
                != (health(state.weth[a], state.debt[a], state.eth) < 1)
                for a in state.weth
            ):
                return level
        return levels[0]

    def debt_changes(self, state: State, count: int, *, exclude: Iterable[str] = ()) -> list[Tx]:
        """Borrow or repay on l2 for ``count`` accounts: ``mint``/``burn`` of the debt token,
        each sent by the account itself."""
        skip = set(exclude)
        chosen = self.rng.sample([a for a in state.debt if a not in skip], k=count)
        txs: list[Tx] = []
        for account in chosen:
            weth, debt = state.weth[account], state.debt[account]
            under_now = health(weth, debt, state.eth) < 1
            flip = self.rng.random() < FLIP_SHARE
            target = self._debt_for(weth, state.eth, under=under_now != flip)
            if target is None or target == debt:
                continue
            if target > debt:
                txs.append(Tx("l2", self.debt_token, account, "mint", (account, target - debt)))
            else:
                txs.append(Tx("l2", self.debt_token, account, "burn", (account, debt - target)))
        return txs

    def transfers(self, state: State, pairs: int, *, exclude: Iterable[str] = ()) -> list[Tx]:
        """WETH ``transfer``s on l1 between disjoint pairs of accounts, each sent by its
        (impersonated) holder, every account ending clear of the threshold."""
        skip = set(exclude)
        pool = [a for a in state.weth if a not in skip and state.weth[a] > WETH_STEP]
        self.rng.shuffle(pool)
        receivers = [a for a in state.weth if a not in skip]
        self.rng.shuffle(receivers)
        used: set[str] = set()
        txs: list[Tx] = []
        for sender in pool:
            if len(txs) >= pairs:
                break
            if sender in used:
                continue
            for receiver in receivers:
                if receiver == sender or receiver in used:
                    continue
                amount = self._transfer_amount(state, sender, receiver)
                if amount is not None:
                    used |= {sender, receiver}
                    txs.append(Tx("l1", self.weth_token, sender, "transfer", (receiver, amount)))
                    break
        return txs

    def _transfer_amount(self, state: State, sender: str, receiver: str) -> int | None:
        have = state.weth[sender]
        for _ in range(PLAN_ATTEMPTS // 4):
            amount = self._weth(have / WETH_UNIT * self.rng.uniform(0.1, 0.9))
            if not 0 < amount < have:
                continue
            if clear_of_threshold(have - amount, state.debt[sender]) and clear_of_threshold(
                state.weth[receiver] + amount, state.debt[receiver]
            ):
                return amount
        return None

    def _debt_for(self, weth: int, eth: Decimal, *, under: bool) -> int | None:
        low, high = UNDERWATER_RANGE if under else HEALTHY_RANGE
        for _ in range(PLAN_ATTEMPTS):
            target = self.rng.uniform(low, high)
            collateral = weth / WETH_UNIT * float(eth) * WETH_WEIGHT
            debt = round(collateral / target * DEBT_UNIT)
            if debt > 0 and clear_of_threshold(weth, debt):
                return debt
        return None

    @staticmethod
    def _weth(amount: float) -> int:
        return max(WETH_STEP, round(amount * WETH_UNIT / WETH_STEP) * WETH_STEP)
