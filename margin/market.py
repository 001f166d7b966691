"""Market vectors: per-token, per-asset and per-(asset, chain) numbers for ``margin.kernel``.

Derived from prices, volatilities and chain statuses with the scalar helpers of
``margin.valuation`` and ``margin.latency``, so the kernel's row arithmetic starts from the very
floats the reference uses. A few hundred entries: rebuilt whenever a price or status changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from core.domain import Role
from margin.kernel import FLAG_DTYPE, MarketVectors
from margin.latency import collateral_factor, liability_factor, price_shock
from margin.model import ChainInput, EngineParams, PriceInput, TokenRisk
from margin.tiers import IndexArray
from margin.valuation import (
    chain_flags,
    price_flags,
    role_price,
    signed_price_scale,
    value_scale,
)


def build_market(
    *,
    params: EngineParams,
    assets: Sequence[str],
    prices: Mapping[str, PriceInput],
    chains: Sequence[ChainInput],
    tokens: Sequence[TokenRisk],
    token_group: IndexArray,
    token_flags: Mapping[tuple[str, str], int] | None = None,
) -> MarketVectors:
    """Vectors indexed like ``assets``, ``chains`` and ``tokens``; ``token_group[t] >= 0``
    marks a token sliced in tiered buckets (its flat weight is then 0); ``token_flags`` adds
    flags of single tokens (``(chain, token)`` → bits, e.g. ``ORACLE_DRIFT``)."""
    asset_ids = {name: i for i, name in enumerate(assets)}
    chain_ids = {chain.name: i for i, chain in enumerate(chains)}
    scale, z = value_scale(params.value_decimals), params.z
    n_assets, n_chains = len(assets), len(chains)
    low, high, volatility = np.zeros(n_assets), np.zeros(n_assets), np.zeros(n_assets)
    priced = np.zeros(n_assets, dtype=np.bool_)
    asset_flags = np.zeros(n_assets, dtype=FLAG_DTYPE)
    for a, name in enumerate(assets):
        price = prices.get(name)
        asset_flags[a] = price_flags(price)
        if price is not None:
            low[a], high[a], volatility[a] = price.low, price.high, price.volatility
            priced[a] = True
    c_flags = np.array([chain_flags(c) for c in chains], dtype=FLAG_DTYPE)
    long_factor, short_factor = np.ones((n_assets, n_chains)), np.ones((n_assets, n_chains))
    for a in range(n_assets):
        for c, chain in enumerate(chains):
            shock = price_shock(z, float(volatility[a]), chain.liquidation_latency_s)
            long_factor[a, c] = collateral_factor(shock)
            short_factor[a, c] = liability_factor(shock)
    n_tokens = len(tokens)
    t_scale, t_weight, t_factor = np.zeros(n_tokens), np.zeros(n_tokens), np.ones(n_tokens)
    t_flags = np.zeros(n_tokens, dtype=FLAG_DTYPE)
    for t, risk in enumerate(tokens):
        a, c = asset_ids[risk.asset], chain_ids[risk.chain]
        price = prices.get(risk.asset)
        if price is not None:
            t_scale[t] = signed_price_scale(risk.role, role_price(risk.role, price), scale)
        t_weight[t] = 0.0 if token_group[t] >= 0 else risk.weight
        collateral = risk.role is Role.COLLATERAL
        t_factor[t] = long_factor[a, c] if collateral else short_factor[a, c]
        t_flags[t] = asset_flags[a] | c_flags[c] | (token_flags or {}).get(risk.key, 0)
    return MarketVectors(
        scale=scale,
        token_scale=t_scale,
        token_weight=t_weight,
        token_factor=t_factor,
        token_flags=t_flags,
        asset_low=low,
        asset_high=high,
        asset_priced=priced,
        asset_flags=asset_flags,
        chain_flags=c_flags,
        long_factor=long_factor,
        short_factor=short_factor,
    )
