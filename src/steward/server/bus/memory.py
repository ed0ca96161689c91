"""The in-process bus (one server process, the default)."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

from steward.server.bus import Handler

log = logging.getLogger(__name__)


class InMemoryBus:
    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = defaultdict(list)
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def subscribe(self, channel: str, handler: Handler) -> None:
        self._handlers[channel].append(handler)

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        # Delivered on separate tasks, so a publisher never waits for its subscribers.
        for handler in self._handlers.get(channel, ()):
            task = asyncio.create_task(self._deliver(handler, message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _deliver(handler: Handler, message: dict[str, Any]) -> None:
        try:
            await handler(message)
        except Exception:
            log.exception("bus handler failed")
