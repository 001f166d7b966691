"""Store records → the JSON documents only the API shows (shapes: ``daemon.api.openapi``):
balances, stored positions, the account detail and the cycle a listing is as of. The account
state itself is ``daemon.documents.account_document``, shared with MQTT and the CLI."""

from __future__ import annotations

from collections.abc import Mapping

from daemon.documents import account_document, float_text
from daemon.store.records import AccountRecord, StoredBalance, StoredCycle
from margin.model import Position
from margin.options import OptionPosition


def balance_line(balance: StoredBalance) -> dict[str, object]:
    """A stored raw balance: the last good ``raw`` at ``block`` (null: never read
    successfully); ``read_failed`` with ``failed_block`` while the latest read fails."""
    return {
        "chain": balance.chain,
        "token": balance.token.lower(),
        "raw": None if balance.raw is None else str(balance.raw),
        "block": balance.block_number,
        "block_hash": balance.block_hash,
        "read_failed": balance.read_failed,
        "failed_block": balance.failed_block_number,
    }


def position_document(position: Position) -> dict[str, object]:
    """A stored position as ``PUT /v1/positions`` takes it (numbers as decimal strings)."""
    return {
        "asset": position.asset,
        "chain": position.chain,
        "size": float_text(position.size),
        "entry_price": float_text(position.entry_price),
        "mmr_tiers": [
            {"up_to": tier.up_to, "rate": tier.rate}
            if tier.up_to is not None
            else {"rate": tier.rate}
            for tier in position.mmr_tiers
        ],
    }


def option_document(option: OptionPosition) -> dict[str, object]:
    """A stored option line as ``PUT /v1/positions`` takes it (numbers as decimal strings)."""
    return {
        "kind": "option",
        "asset": option.asset,
        "chain": option.chain,
        "size": float_text(option.size),
        "right": option.right.value,
        "strike": float_text(option.strike),
        "expiry": option.expiry,
        "implied_vol": float_text(option.implied_vol),
    }


def account_detail_document(address: str, record: AccountRecord) -> dict[str, object]:
    """``/v1/accounts/{address}``: current state (null before any cycle, or for an account
    known to venues only), balances, perps (``positions``), option lines (``options``), and
    its venue entries (also in ``state``)."""
    health = record.health
    venues: list[Mapping[str, object]] = record.venues
    return {
        "account": address.lower(),
        "state": None if health is None else account_document(health, venues),
        "balances": [balance_line(b) for b in record.balances],
        "positions": [position_document(p) for p in record.positions],
        "options": [option_document(o) for o in record.options],
        "venues": sorted(venues, key=lambda v: str(v.get("venue"))),
    }


def cycle_document(cycle: StoredCycle | None) -> dict[str, object] | None:
    """The last stored cycle: what the listing is as of (``None`` before the first)."""
    if cycle is None:
        return None
    return {
        "cycle_id": cycle.id,
        "at": cycle.at,
        "blocks": dict(cycle.blocks),
        "accounts": cycle.accounts,
    }
