"""A small publish/subscribe interface: wakes the replica that holds an agent's connection.

The bus carries hints, never data that exists nowhere else: the database stays the source of
truth, so a lost message delays work, it never loses it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

Handler = Callable[[dict[str, Any]], Awaitable[None]]

AGENT_CHANNEL = "agents"


class Bus(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, channel: str, message: dict[str, Any]) -> None: ...

    def subscribe(self, channel: str, handler: Handler) -> None: ...
