"""Venue errors, in crossmargin's one hierarchy (``core.errors``).

Every message names the venue, so an operator with several venues knows which one is wrong.
"""

from __future__ import annotations

from core.errors import CrossmarginError, NonRetryableError, RetryableError


class VenueError(CrossmarginError):
    """Base of the errors a venue adapter raises on purpose; ``venue`` is its name."""

    def __init__(self, venue: str, problem: str) -> None:
        self.venue = venue
        self.problem = problem
        super().__init__(f"venue {venue}: {problem}")


class VenueSetupError(VenueError, NonRetryableError):
    """The venue cannot be used as configured: no code at an address, not the contract its
    kind expects (a call of its interface reverts or answers nonsense), an unknown kind."""


class VenueReadFailed(VenueError, RetryableError):
    """Reading the venue at a block failed (RPC fault, a reverted batch): its results are
    kept from the last good read and marked stale, never dropped and never zeroed."""


class VenueMathOverflow(NonRetryableError):
    """An intermediate of the venue's integer arithmetic left uint256 (or divided by zero):
    the contract itself would revert on these inputs, so there is no venue value to report."""

    def __init__(self, operation: str) -> None:
        self.operation = operation
        super().__init__(f"venue arithmetic reverts: {operation}")
