"""The agent hub: live connections on this process, command wake-ups, watched devices.

A command is in the database before the hub hears of it; the bus only says "look now". Whatever
the hub misses, an agent gets on its next connect or poll.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from steward.protocol import AgentConfig, CommandDispatch, ErrorMessage, Welcome
from steward.server.bus import AGENT_CHANNEL, Bus
from steward.server.commands import service as commands
from steward.server.gateway.status import StatusBuffer
from steward.server.settings import Settings

log = logging.getLogger(__name__)

Sender = Callable[[AgentConfig | CommandDispatch | ErrorMessage | Welcome], Awaitable[None]]


@dataclass(eq=False)
class AgentConnection:
    """One agent's live WebSocket on this process."""

    device_id: uuid.UUID
    tenant_id: uuid.UUID
    send: Sender
    interval_s: float
    opened_at: float = field(default_factory=time.monotonic)
    dispatch_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class AgentHub:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        bus: Bus,
        status: StatusBuffer,
    ) -> None:
        self.settings = settings
        self._sessions = sessions
        self.system_sessions = sessions
        self._bus = bus
        self.status = status
        self._connections: dict[uuid.UUID, AgentConnection] = {}
        self._watched_until: dict[uuid.UUID, float] = {}
        bus.subscribe(AGENT_CHANNEL, self._on_bus_message)

    # ---- connections -------------------------------------------------------------------------

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    def is_connected(self, device_id: uuid.UUID) -> bool:
        return device_id in self._connections

    def register(self, connection: AgentConnection) -> AgentConnection | None:
        """Add a connection; returns the one it replaces (same agent reconnecting), if any."""
        previous = self._connections.get(connection.device_id)
        self._connections[connection.device_id] = connection
        return previous

    def unregister(self, connection: AgentConnection) -> bool:
        """Remove a connection; False if a newer one for the same device took its place."""
        if self._connections.get(connection.device_id) is connection:
            del self._connections[connection.device_id]
            return True
        return False

    # ---- intervals and watching --------------------------------------------------------------

    def interval_for(self, device_id: uuid.UUID) -> float:
        if self._watched_until.get(device_id, 0) > time.monotonic():
            return self.settings.watched_heartbeat_interval_s
        return self.settings.light_heartbeat_interval_s

    def config_for(self, device_id: uuid.UUID) -> AgentConfig:
        return AgentConfig(
            light_heartbeat_interval_s=self.interval_for(device_id),
            full_heartbeat_interval_s=self.settings.full_heartbeat_interval_s,
        )

    async def watch(self, device_id: uuid.UUID) -> None:
        """Someone is looking at this device: ask its agent for frequent heartbeats."""
        await self._bus.publish(AGENT_CHANNEL, {"kind": "watch", "device_id": str(device_id)})

    async def expire_watches(self) -> None:
        now = time.monotonic()
        for device_id in [d for d, until in self._watched_until.items() if until <= now]:
            del self._watched_until[device_id]
            await self._push_config(device_id)

    async def _push_config(self, device_id: uuid.UUID) -> None:
        connection = self._connections.get(device_id)
        if connection is None:
            return
        config = self.config_for(device_id)
        if config.light_heartbeat_interval_s == connection.interval_s:
            return
        # The offline deadline must allow for the longer of the old and new intervals.
        connection.interval_s = config.light_heartbeat_interval_s
        self.status.seen(
            device_id,
            connection.tenant_id,
            transport="ws",
            interval_s=max(
                config.light_heartbeat_interval_s, self.settings.light_heartbeat_interval_s
            ),
        )
        try:
            await connection.send(config)
        except Exception:
            log.debug("could not send config to %s", device_id, exc_info=True)

    # ---- commands ----------------------------------------------------------------------------

    async def notify_command(self, device_id: uuid.UUID) -> None:
        """Call after the command's transaction committed."""
        await self._bus.publish(AGENT_CHANNEL, {"kind": "wake", "device_id": str(device_id)})

    async def dispatch_pending(self, device_id: uuid.UUID, *, all_unfinished: bool) -> int:
        """Send this device's commands over its connection here, if it has one."""
        connection = self._connections.get(device_id)
        if connection is None:
            return 0
        async with connection.dispatch_lock:
            # No transaction stays open while we wait on the network.
            async with self._sessions() as session:
                resend_after = None if all_unfinished else 3600.0
                pending = await commands.pending_for(
                    session, device_id, resend_after_s=resend_after
                )
                await session.commit()
            sent: list[uuid.UUID] = []
            for command in pending:
                try:
                    await connection.send(commands.to_dispatch(command))
                except Exception:
                    log.info("dispatch to %s failed; it stays queued", device_id)
                    break
                sent.append(command.id)
            if sent:
                async with self._sessions() as session:
                    await commands.mark_sent(session, device_id, sent)
                    await session.commit()
            return len(sent)

    async def _on_bus_message(self, message: dict[str, Any]) -> None:
        try:
            device_id = uuid.UUID(str(message.get("device_id")))
        except ValueError:
            return
        if device_id not in self._connections:
            if message.get("kind") == "watch":
                # Poll agents read their interval on each poll.
                self._watched_until[device_id] = time.monotonic() + self.settings.watch_ttl_s
            return
        kind = message.get("kind")
        if kind == "wake":
            await self.dispatch_pending(device_id, all_unfinished=False)
        elif kind == "watch":
            self._watched_until[device_id] = time.monotonic() + self.settings.watch_ttl_s
            await self._push_config(device_id)
