"""Python's garbage collector on a server that holds thousands of connections.

CPython's cycle collector now and then walks every tracked object: a full pass. With 10,000
agents connected that is millions of objects, and each pass stopped the event loop for 1 to 1.6 s
(measured: 16 such passes while 10,000 agents connected and one bulk job ran). Every latency
figure of the benchmark had these pauses in its tail.

Objects that have lived a while (connections, their tasks, caches) are moved out of the
collector's sight with `gc.freeze()` every few seconds, after a collection of the young
generations so that fresh garbage is not frozen with them. Full passes then walk only what is
newer than the last freeze: milliseconds. Cyclic garbage left by frozen objects (a connection
that closed, say) is reclaimed by one real full pass at a long interval, which pauses the
loop once (about a second at 10,000 connections); reference counting frees everything else
as before. Process-wide: with several runtimes in one process (the tests), each keeps it.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger(__name__)


class CollectorPolicy:
    def __init__(self, freeze_interval_s: float, full_interval_s: float) -> None:
        self.freeze_interval_s = freeze_interval_s
        self.full_interval_s = full_interval_s
        self._last_full = time.monotonic()

    @property
    def enabled(self) -> bool:
        return self.freeze_interval_s > 0

    async def run(self) -> None:
        self.tick()

    def tick(self) -> None:
        """Called every `freeze_interval_s`: freeze what survived; now and then, a full pass."""
        if time.monotonic() - self._last_full >= self.full_interval_s:
            self.full()
            return
        gc.collect(1)  # the young generations: fresh cyclic garbage goes, not into the freeze
        gc.freeze()

    def full(self) -> None:
        """Everything back in sight, one full collection, and frozen again."""
        started = time.monotonic()
        gc.unfreeze()
        collected = gc.collect()
        gc.freeze()
        self._last_full = time.monotonic()
        log.info(
            "full garbage collection: %d objects freed in %.2f s",
            collected,
            self._last_full - started,
        )
