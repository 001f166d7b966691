"""Loopback price APIs for tests: ``PriceServer`` and its helpers now live in package code
(``devnet.exchange``, which ``crossmargin demo`` uses too) and are re-exported here,
next to the oracle-test config builders."""

from __future__ import annotations

from typing import Any

from devnet.exchange import Mode, PriceServer, binance, coinbase, free_port, generic

__all__ = [
    "ACCOUNT",
    "TOKEN",
    "Mode",
    "PriceServer",
    "binance",
    "coinbase",
    "free_port",
    "generic",
    "oracle_config_data",
]

# --- configs for oracle tests ----------------------------------------------------------------

TOKEN = "0x00000000000000000000000000000000000000e1"
ACCOUNT = "0x00000000000000000000000000000000000000a1"


def oracle_config_data(
    assets: list[dict[str, Any]], chains: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    """A whole config (one token per asset on the first chain) around ``assets``."""
    tokens = [
        {
            "chain": chains[0]["name"],
            "address": f"0x{i + 1:040x}",
            "asset": asset["symbol"],
            "role": "collateral",
            "weight": 0.8,
        }
        for i, asset in enumerate(assets)
    ]
    return {"chains": chains, "tokens": tokens, "accounts": [ACCOUNT], "assets": assets, **extra}
