"""The transport interface: how a `Channel`'s messages travel to the server and back."""

from __future__ import annotations

from abc import ABC, abstractmethod

from steward.agent._channel import Channel


class Transport(ABC):
    """Carries one connection's worth of messages between a `Channel` and the server.

    `run()` connects, calls `channel.on_connected()` once the server has accepted the agent,
    then exchanges messages until the connection ends. It returns normally when the server
    ended the connection cleanly (or `until`, a `time.monotonic()` deadline, has passed) and
    raises a `TransportError` (or `AuthenticationError`) when it failed. The `Agent` decides
    when to call it again. Cancelling `run()` closes the connection cleanly.
    """

    name: str

    @abstractmethod
    async def run(self, channel: Channel, *, until: float | None = None) -> None: ...
