"""The garbage collector and a daemon whose state lives as long as it does.

At 100,000 accounts the daemon holds what it built at start-up — the book, the engine's
account lists and tables, caches — until it stops. CPython's full collection (generation 2)
traverses all of it every time it runs: 130-420 ms with the event loop held, several times
during a market-wide move's burst of events (bench/RESULTS.md, issue 14), though none of it
is ever garbage. ``freeze_long_lived`` collects once and moves every object alive into the
permanent generation (``gc.freeze``): later full collections look only at what was allocated
since. Reference counting still frees a frozen object once nothing refers to it; only a
reference cycle made of frozen objects alone is never reclaimed.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger(__name__)


def freeze_long_lived() -> int:
    """Collect, then keep everything alive now out of later collections; how many objects
    the permanent generation holds. Holds the caller's thread for one full collection
    (~0.2 s at 100,000 accounts): call it once, when start-up is over."""
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("heap_frozen objects=%d seconds=%.3f", frozen, time.perf_counter() - started)
    return frozen
