"""The database work of agents connecting at the same moment, done together.

After a server restart thousands of agents connect within seconds. Each needs its credentials
checked and, once connected, its cancels and unfinished commands read. Done one by one, every
handshake waits its turn for the database (SQLite has one connection per process) and the storm
drains at a few hundred agents a second. Here the handshakes of the same few milliseconds share
one query: one `IN (...)` for up to 500 credentials, one for their commands.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    """`await coalescer(item)`: calls made within `window_s` of each other are answered by one
    call of `work(items)`, which returns one result per item, in order."""

    def __init__(
        self,
        work: Callable[[list[T]], Awaitable[list[R]]],
        *,
        window_s: float = 0.002,
        max_batch: int = 500,
    ) -> None:
        self._work = work
        self._window_s = window_s
        self._max_batch = max_batch
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None

    async def __call__(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="coalescer")
        return await future

    async def _drain(self) -> None:
        await asyncio.sleep(self._window_s)
        while self._waiting:
            batch = self._waiting[: self._max_batch]
            del self._waiting[: self._max_batch]
            try:
                results = await self._work([item for item, _ in batch])
            except BaseException as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
