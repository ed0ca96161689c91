"""The agent hub: live connections on this process, command wake-ups, watched devices.

A command is in the database before the hub hears of it; the bus only says "look now". Whatever
the hub misses, an agent gets on its next connect or poll.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from steward.protocol import (
    AgentConfig,
    CommandCancel,
    CommandDispatch,
    CommandStatus,
    ErrorMessage,
    Welcome,
)
from steward.server.bus import AGENT_CHANNEL, Bus, MonitoredBus
from steward.server.bus.presence import Presence
from steward.server.commands import delivery as commands
from steward.server.commands.batch import DeliveryWriter
from steward.server.commands.models import Command
from steward.server.commands.output import OutputHub
from steward.server.devices.enrollment import AgentIdentity, authenticate_agents
from steward.server.errors import Unauthorized
from steward.server.gateway.handshakes import Coalescer
from steward.server.gateway.relay import Relay
from steward.server.gateway.reports import after_reports
from steward.server.gateway.status import StatusBuffer
from steward.server.settings import Settings

log = logging.getLogger(__name__)
INLINE_PAYLOAD_BYTES = 32 * 1024  # larger payloads travel as a wake-up, not on the bus
DELIVERY_CHUNK = 500  # dispatches per bus message and per round of concurrent sends
RECENT_SENDS = 256  # command ids remembered per connection

# A message, or a frame already serialised (a dispatch straight from `deliver`).
Sender = Callable[
    [AgentConfig | CommandDispatch | CommandCancel | ErrorMessage | Welcome | str],
    Awaitable[None],
]


def _dispatch_frame(dispatch: dict[str, Any], payload: str) -> str:
    """The `command.dispatch` frame of `dispatch_fields`, around a payload already in JSON."""
    head = {key: value for key, value in dispatch.items() if key != "payload"}
    return f'{json.dumps(head)[:-1]}, "payload": {payload}}}'


@dataclass(eq=False)
class AgentConnection:
    """One agent's live WebSocket on this process."""

    device_id: uuid.UUID
    tenant_id: uuid.UUID
    send: Sender
    interval_s: float
    opened_at: float = field(default_factory=time.monotonic)
    dispatch_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Commands sent on this connection lately: a delivery from the bus and the catch-up of a
    # new connection can race for the same command; it goes out once.
    recent: dict[uuid.UUID, None] = field(default_factory=dict)

    def first_time(self, command_id: uuid.UUID) -> bool:
        """True (and remembered) unless this command went out on this connection lately."""
        if command_id in self.recent:
            return False
        if len(self.recent) >= RECENT_SENDS:
            del self.recent[next(iter(self.recent))]
        self.recent[command_id] = None
        return True


class AgentHub:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        bus: Bus,
        status: StatusBuffer,
        presence: Presence | None = None,
    ) -> None:
        self.settings = settings
        # Which replica holds which agent: told of every connect and disconnect (memory only).
        self.presence = presence or Presence()
        self._sessions = sessions
        self.system_sessions = sessions
        self._bus = bus
        self.status = status
        self.output = OutputHub(sessions, bus)  # live command output (commands/output.py)
        # Sends, acks and results written in batches (commands/batch.py); run by the runtime.
        self.writer = DeliveryWriter(sessions)
        self.writer.after_commit = functools.partial(after_reports, self)
        self._catch_ups = Coalescer(self._catch_up_many)
        # `await hub.authenticate((agent_id, secret))`: credentials checked many at a time.
        self.authenticate = Coalescer(self._authenticate_many)
        self._connections: dict[uuid.UUID, AgentConnection] = {}
        self._watched_until: dict[uuid.UUID, float] = {}
        # Terminal frames and file requests between consoles and agents (gateway/relay.py).
        self.relay = Relay(bus, self.presence, self._connections.get)
        # Set by the runtime: a job's command finished (jobs/runner.py releases the next ones).
        self.on_job_progress: Callable[[uuid.UUID], Awaitable[None]] | None = None
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
        self.presence.connected(connection.device_id)
        return previous

    def unregister(self, connection: AgentConnection) -> bool:
        """Remove a connection; False if a newer one for the same device took its place."""
        if self._connections.get(connection.device_id) is connection:
            del self._connections[connection.device_id]
            self.presence.disconnected(connection.device_id)
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
        """Call after the command's transaction committed: its replica looks it up and sends it."""
        await self._bus.publish(AGENT_CHANNEL, {"kind": "wake", "device_id": str(device_id)})

    async def deliver(self, queued: Sequence[commands.Queued]) -> None:
        """Call after these queued commands committed. A command whose agent is connected to
        this process is sent at once, by the caller (no task, no bus hop, no query). The others
        go, as they are, to whichever replica holds their agent, which sends them and records
        them as sent in its next batch (commands/batch.py). Large payloads go as a wake-up
        instead (the replica reads them from the database). One bus message per few hundred
        commands, not per device."""
        local: list[tuple[AgentConnection, CommandDispatch | str]] = []
        items: list[dict[str, Any]] = []
        # Another replica may hold a newer connection of an agent this one still lists: with
        # replicas, local sends go on the bus too (this process skips what it sent already).
        everywhere = isinstance(self._bus, MonitoredBus)
        payloads: dict[int, str] = {}  # a job's commands share one payload: serialised once
        for command in queued:
            dispatch = commands.dispatch_fields(command)
            payload = payloads.get(id(command.payload))
            if payload is None:
                payload = payloads[id(command.payload)] = json.dumps(command.payload)
            frame = _dispatch_frame(dispatch, payload)  # validated when created
            if len(frame) > INLINE_PAYLOAD_BYTES:
                await self.notify_command(command.device_id)
                continue
            connection = self._connections.get(command.device_id)
            if connection is not None and connection.first_time(command.id):
                self.writer.sent(connection.tenant_id, connection.device_id, command.id)
                local.append((connection, frame))
                if not everywhere:
                    continue
            items.append({"device_id": str(command.device_id), "dispatch": dispatch})
        await self._send_all(local)
        for start in range(0, len(items), DELIVERY_CHUNK):
            chunk = items[start : start + DELIVERY_CHUNK]
            await self._bus.publish(AGENT_CHANNEL, {"kind": "dispatch", "items": chunk})

    async def notify_cancel(self, device_id: uuid.UUID) -> None:
        """Call after a cancel was committed: the agent holding the device kills its command."""
        await self._bus.publish(AGENT_CHANNEL, {"kind": "cancel", "device_id": str(device_id)})

    async def job_progress(self, job_id: uuid.UUID) -> None:
        if self.on_job_progress is not None:
            await self.on_job_progress(job_id)

    async def send_cancels(self, device_id: uuid.UUID) -> int:
        connection = self._connections.get(device_id)
        if connection is None:
            return 0
        async with self._sessions() as session:
            cancels = await commands.cancels_for(session, device_id)
            await session.commit()
        for command_id in cancels:
            try:
                await connection.send(CommandCancel(command_id=command_id))
            except Exception:
                log.info("cancel to %s failed; sent again when it reconnects", device_id)
                return 0
        return len(cancels)

    async def catch_up(self, device_id: uuid.UUID) -> None:
        """A new connection: its cancels and every unfinished command (the agent's ledger drops
        what it already ran and reports its result again). Connections of the same moment
        share the queries (gateway/handshakes.py)."""
        connection = self._connections.get(device_id)
        if connection is None:
            return
        async with connection.dispatch_lock:
            cancels, pending = await self._catch_ups(device_id)
            try:
                for command_id in cancels:
                    await connection.send(CommandCancel(command_id=command_id))
                for command in pending:
                    if connection.first_time(command.id):
                        await connection.send(commands.to_dispatch(command))
            except Exception:
                log.info("catching up %s failed; again when it reconnects", device_id)

    async def _authenticate_many(
        self, claims: list[tuple[uuid.UUID, str]]
    ) -> list[AgentIdentity | Unauthorized]:
        async with self._sessions() as session:
            return await authenticate_agents(session, claims)

    async def _catch_up_many(
        self, device_ids: list[uuid.UUID]
    ) -> list[tuple[list[str], list[Command]]]:
        async with self._sessions() as session:
            found = await commands.unfinished_for_many(session, device_ids)
            await commands.mark_sent_many(session, [c for _, p in found.values() for c in p])
            await session.commit()
        return [found[device_id] for device_id in device_ids]

    async def dispatch_pending(self, device_id: uuid.UUID, *, all_unfinished: bool) -> int:
        """Send this device's commands over its connection here, if it has one."""
        connection = self._connections.get(device_id)
        if connection is None:
            return 0
        async with connection.dispatch_lock:
            # Marked sent before it is sent (an ack may come back before a later commit would),
            # and no transaction stays open while we wait on the network. A send that fails
            # leaves it `sent`: the next connection gets every unfinished command again.
            async with self._sessions() as session:
                resend_after = None if all_unfinished else 3600.0
                pending = await commands.pending_for(
                    session, device_id, resend_after_s=resend_after
                )
                await commands.mark_sent(
                    session, connection.tenant_id, device_id, [c.id for c in pending]
                )
                await session.commit()
            sent = 0
            for command in pending:
                try:
                    await connection.send(commands.to_dispatch(command))
                except Exception:
                    log.info("dispatch to %s failed; sent again when it reconnects", device_id)
                    break
                sent += 1
            return sent

    async def poll_pending(self, batch_size: int = 500) -> int:
        """The fallback while the bus is down (a wake-up or cancel from another replica may be
        lost): send the queued commands and the cancels of the agents connected here. One query
        per batch of connections finds the few devices that have any; returns how many
        commands and cancels went out."""
        sent = 0
        device_ids = list(self._connections)
        for start in range(0, len(device_ids), batch_size):
            batch = device_ids[start : start + batch_size]
            async with self._sessions() as session:
                rows = await session.execute(
                    select(Command.device_id, Command.status)
                    .where(
                        Command.device_id.in_(batch),
                        (Command.status == CommandStatus.QUEUED)
                        | (
                            Command.cancel_requested_at.is_not(None)
                            & Command.status.in_([CommandStatus.SENT, CommandStatus.RUNNING])
                        ),
                    )
                    .distinct()
                )
                found = rows.all()
            for device_id in {row.device_id for row in found if row.status != "queued"}:
                sent += await self.send_cancels(device_id)
            for device_id in {row.device_id for row in found if row.status == "queued"}:
                sent += await self.dispatch_pending(device_id, all_unfinished=False)
        return sent

    async def _send_items(self, items: object) -> None:
        """Send the dispatches of a `deliver` message whose agents are connected here."""
        if not isinstance(items, list):
            return
        sends: list[tuple[AgentConnection, CommandDispatch | str]] = []
        for item in items:
            try:
                connection = self._connections.get(uuid.UUID(str(item.get("device_id"))))
                if connection is None:
                    continue
                dispatch = CommandDispatch.model_validate(item.get("dispatch"))
                command_id = uuid.UUID(dispatch.command_id)
            except (AttributeError, ValueError):  # ValidationError is a ValueError
                log.warning("ignored a malformed dispatch on the bus")
                continue
            if not connection.first_time(command_id):
                continue  # sent already: by the catch-up of a new connection, or by `deliver`
            # Recorded as sent before it is sent: the agent's ack must find it `sent`.
            self.writer.sent(connection.tenant_id, connection.device_id, command_id)
            sends.append((connection, dispatch))
        await self._send_all(sends)

    async def _send_all(self, sends: list[tuple[AgentConnection, CommandDispatch | str]]) -> None:
        """One send is awaited in place (the lowest latency); many go concurrently, in rounds."""
        if len(sends) == 1:
            await self._send_dispatch(*sends[0])
            return
        for start in range(0, len(sends), DELIVERY_CHUNK):
            round_ = sends[start : start + DELIVERY_CHUNK]
            await asyncio.gather(*(self._send_dispatch(c, d) for c, d in round_))

    @staticmethod
    async def _send_dispatch(connection: AgentConnection, dispatch: CommandDispatch | str) -> None:
        # A send that fails leaves the command `sent`: the next connection gets it again.
        try:
            await connection.send(dispatch)
        except Exception:
            log.info("dispatch to %s failed; sent again when it reconnects", connection.device_id)

    async def _on_bus_message(self, message: dict[str, Any]) -> None:
        kind = message.get("kind")
        if kind == "dispatch":
            await self._send_items(message.get("items"))
            return
        try:
            device_id = uuid.UUID(str(message.get("device_id")))
        except ValueError:
            return
        if device_id not in self._connections:
            if kind == "watch":
                # Poll agents read their interval on each poll.
                self._watched_until[device_id] = time.monotonic() + self.settings.watch_ttl_s
            return
        if kind == "relay":
            await self.relay.on_bus(self._connections[device_id], message)
        elif kind == "wake":
            await self.dispatch_pending(device_id, all_unfinished=False)
        elif kind == "cancel":
            await self.send_cancels(device_id)
        elif kind == "watch":
            self._watched_until[device_id] = time.monotonic() + self.settings.watch_ttl_s
            await self._push_config(device_id)
