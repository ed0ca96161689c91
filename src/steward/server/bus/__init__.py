"""A small publish/subscribe interface: wakes the replica that holds an agent's connection.

The bus carries hints, never data that exists nowhere else: the database stays the source of
truth, so a lost message delays work, it never loses it. While a bus is down (`healthy` is
False) the runtime polls the database for pending commands instead (`PollWhileDown`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from steward.server.settings import Settings

Handler = Callable[[dict[str, Any]], Awaitable[None]]

AGENT_CHANNEL = "agents"
BUS_DOWN = "down (polling the database)"
FALLBACK_POLL_INTERVAL_S = 2.0  # how late a command may reach its agent while the bus is down


class Bus(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, channel: str, message: dict[str, Any]) -> None: ...

    def subscribe(self, channel: str, handler: Handler) -> None: ...


def make_bus(settings: Settings, *, prefix: str = "steward") -> Bus:
    """Redis when `STEWARD_REDIS_URL` is set (replicas), else the in-process bus."""
    if settings.redis_url:
        from steward.server.bus.redis import RedisBus

        return RedisBus(settings.redis_url, prefix=prefix)
    from steward.server.bus.memory import InMemoryBus

    return InMemoryBus()


@runtime_checkable
class MonitoredBus(Protocol):
    """A bus that can lose messages (Redis); one without these attributes never does."""

    kind: str  # "redis", for /healthz

    @property
    def healthy(self) -> bool:
        """False while messages cannot reach the other replicas."""
        ...

    @property
    def epoch(self) -> int:
        """Changes each time the bus (re)connects: hints published before may have been lost."""
        ...


def bus_healthy(bus: Bus) -> bool:
    return bus.healthy if isinstance(bus, MonitoredBus) else True


def bus_epoch(bus: Bus) -> int:
    return bus.epoch if isinstance(bus, MonitoredBus) else 0


def bus_state(bus: Bus) -> str:
    """What /healthz says about the bus: "memory", "redis" or that it is down."""
    if not isinstance(bus, MonitoredBus):
        return "memory"
    return bus.kind if bus.healthy else BUS_DOWN


class PollWhileDown:
    """The fallback for lost wake-ups: while the bus is down, and once after each reconnect
    (for hints dropped before the outage was noticed), poll the database for pending commands.
    Does nothing while the bus is healthy. Called every few seconds by the runtime."""

    def __init__(self, bus: Bus, poll: Callable[[], Awaitable[int]]) -> None:
        self._bus = bus
        self._poll = poll
        self._epoch = bus_epoch(bus)

    async def __call__(self) -> int:
        healthy, epoch = bus_healthy(self._bus), bus_epoch(self._bus)
        if healthy and epoch == self._epoch:
            return 0
        if healthy:
            self._epoch = epoch  # this poll catches up with what the outage dropped
        return await self._poll()
