"""L2 sequencer-uptime feeds (Chainlink shape): is the chain's sequencer up, and for how long?

The feed's ``latestRoundData()`` answers ``0`` when the sequencer is up and ``1`` when it is
down; ``startedAt`` is when that status began. After a restart, prices and positions are not
trustworthy yet (users could not act while it was down), so a sequencer that has been up for
less than ``grace_period_s`` counts as not usable either — the chain is ``SEQUENCER_DOWN``.

These feeds only update when the status changes: a months-old ``startedAt`` is normal, and
staleness is never checked here. Anything else this module cannot read as "up since a known
time" (a failed read, an answer other than 0/1, ``startedAt`` of 0 — what the Arbitrum feed
returns before its first round) is treated as down.
"""

from __future__ import annotations

import enum

SEQUENCER_UP_ANSWER = 0
DEFAULT_GRACE_PERIOD_S = 3_600.0  # Aave's and Chainlink's documented example


class SequencerStatus(enum.StrEnum):
    """State of an L2 sequencer as the uptime feed reports it."""

    UP = "UP"
    DOWN = "DOWN"
    GRACE = "GRACE"  # up again, for less than the grace period

    @property
    def usable(self) -> bool:
        """True only when UP: DOWN and GRACE both mark the chain ``SEQUENCER_DOWN``."""
        return self is SequencerStatus.UP


def sequencer_status(
    answer: int | None, started_at: int | None, now: float, grace_period_s: float
) -> SequencerStatus:
    """Classify one uptime-feed reading taken at ``now`` (unix s).

    ``answer``/``started_at`` come from ``latestRoundData()``; pass ``None`` for a read that
    failed or reverted. A ``started_at`` later than ``now`` (clock skew) counts as inside the
    grace period: the sequencer cannot have been up longer than zero seconds.
    """
    if grace_period_s < 0:
        raise ValueError(f"grace_period_s must be >= 0 (got {grace_period_s!r})")
    if answer is None or answer != SEQUENCER_UP_ANSWER:
        return SequencerStatus.DOWN
    if started_at is None or started_at <= 0:
        return SequencerStatus.DOWN
    if now - started_at < grace_period_s:
        return SequencerStatus.GRACE
    return SequencerStatus.UP
