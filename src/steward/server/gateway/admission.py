"""Admission control for agent connections.

A restart of thousands of agents must not queue them all on the database until they time out:
only a few handshakes touch the database at once, and one that cannot get a turn soon is refused
at once with 503 and a jittered Retry-After, so that the storm spreads itself out.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from steward.server.errors import ServerBusy


class AdmissionGate:
    def __init__(self, concurrent: int, wait_s: float, retry_after_s: tuple[int, int]) -> None:
        self._slots = asyncio.Semaphore(concurrent)
        self._wait_s = wait_s
        self._retry_after_s = retry_after_s

    def refuse(self, message: str) -> ServerBusy:
        # Spread the retries so that refused agents do not come back all at once.
        return ServerBusy(message, retry_after_s=random.randint(*self._retry_after_s))  # noqa: S311

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        try:
            await asyncio.wait_for(self._slots.acquire(), self._wait_s)
        except TimeoutError:
            raise self.refuse("the server is busy accepting other agents") from None
        try:
            yield
        finally:
            self._slots.release()
