"""A replica's part of the stored state: what a pipeline for some shards resumes from."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from daemon.store.records import StoredState


def owned_state(state: StoredState, owns: Callable[[str], bool]) -> StoredState:
    """``state`` restricted to the accounts ``owns`` accepts (balances, flags, positions and
    read failures); chain cursors, prices and oracle state are shared and kept whole."""
    return dataclasses.replace(
        state,
        balances={
            chain: {pair: reading for pair, reading in pairs.items() if owns(pair[0])}
            for chain, pairs in state.balances.items()
        },
        health_flags={a: f for a, f in state.health_flags.items() if owns(a)},
        positions=[p for p in state.positions if owns(p.account)],
        read_failures={
            chain: {pair: block for pair, block in pairs.items() if owns(pair[0])}
            for chain, pairs in state.read_failures.items()
        },
    )
