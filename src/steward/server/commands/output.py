"""Live output of running commands: checked, kept in memory, written behind, fanned out.

The gateway feeds every `command.output` chunk to the `OutputHub` of its process. A chunk is
untrusted: it counts only for a sent/running command of the device that sent it (checked once
per command against the database, then cached), only from where the stored text ends (repeats
and overlaps are trimmed), and only up to `MAX_OUTPUT_BYTES` characters per stream (then the
stream is marked truncated). Accepted text is kept in memory and written behind into
`commands.stdout/stderr` once per interval, like `gateway/status.py`: one transaction for all
changed commands, and only into rows still sent/running, so a final result is never overwritten.

Each accepted chunk is published on the bus; every replica's hub hands it to its own
subscribers (the SSE streams of `stream_routes.py`) through bounded queues: a subscriber that
falls behind gets a `reset` (reload) instead of an ever-growing queue.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from steward.protocol import MAX_OUTPUT_BYTES, CommandOutput, CommandStatus
from steward.server.bus import Bus
from steward.server.commands.models import Command

log = logging.getLogger(__name__)

OUTPUT_CHANNEL = "command-output"
STREAMS = ("stdout", "stderr")
# Output may arrive for these; anything else (queued, final, ...) is refused.
_LIVE = (CommandStatus.SENT, CommandStatus.RUNNING)
SUBSCRIBER_QUEUE = 512  # events waiting for one slow subscriber before it is told to reload
_REFUSED_MEMORY = 4096  # command ids remembered as refused, so a noisy agent costs no queries
_EVENTS_PER_MESSAGE = 500
_IDLE_DROP_S = 3600.0  # a buffer nobody fed for this long is dropped (agent gone)


@dataclass(slots=True)
class _Stream:
    parts: list[str] = field(default_factory=list)
    length: int = 0
    truncated: bool = False

    def text(self) -> str:
        if len(self.parts) > 1:
            self.parts = ["".join(self.parts)]
        return self.parts[0] if self.parts else ""


@dataclass(slots=True)
class _Buffer:
    """The output of one running command fed through this process."""

    device_id: uuid.UUID
    streams: dict[str, _Stream]
    dirty: bool = False
    touched: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True)
class OutputSnapshot:
    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool


@dataclass(eq=False)
class Subscription:
    """One listener (an SSE stream) for one command's events on this process."""

    command_id: uuid.UUID
    queue: asyncio.Queue[dict[str, Any]] = field(
        default_factory=lambda: asyncio.Queue(SUBSCRIBER_QUEUE)
    )

    def offer(self, event: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            # Too slow to follow: forget what waits and tell it to start over from a snapshot.
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait({"kind": "reset", "command_id": str(self.command_id)})


class OutputHub:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], bus: Bus) -> None:
        self._sessions = sessions  # system sessions: the gateway's side, across tenants
        self._bus = bus
        self._buffers: dict[uuid.UUID, _Buffer] = {}
        self._refused: dict[tuple[uuid.UUID, uuid.UUID], None] = {}  # (command, device)
        self._subscribers: dict[uuid.UUID, set[Subscription]] = {}
        self._lock = asyncio.Lock()
        bus.subscribe(OUTPUT_CHANNEL, self._on_bus_message)

    def __len__(self) -> int:
        return len(self._buffers)

    # ---- the gateway's side ------------------------------------------------------------------

    async def feed(
        self,
        tenant_id: uuid.UUID,
        device_id: uuid.UUID,
        message: CommandOutput,
        session: AsyncSession | None = None,
    ) -> bool:
        """Take one chunk from the agent of `device_id`. Returns whether any text was new.

        Pass the caller's (system) session when it has one open: SQLite has one connection."""
        try:
            command_id = uuid.UUID(message.command_id)
        except ValueError:
            return False
        buffer = self._buffers.get(command_id)
        if buffer is None:
            buffer = await self._load(command_id, device_id, session)
            if buffer is None:
                return False
            buffer = self._buffers.setdefault(command_id, buffer)
        elif buffer.device_id != device_id:
            log.warning("device %s sent output for another device's command", device_id)
            return False
        stream = buffer.streams[message.stream]
        offset, data = message.offset, message.data
        if stream.truncated or offset + len(data) <= stream.length:
            return False  # a repeat, or past the cap
        if offset > stream.length:
            # A chunk went missing on the way: what follows cannot be placed. The final result
            # carries the whole output.
            log.debug("gap in %s of %s at %d", message.stream, command_id, offset)
            return False
        fresh = data[stream.length - offset :]
        room = MAX_OUTPUT_BYTES - stream.length
        if len(fresh) > room:
            fresh, stream.truncated = fresh[:room], True
        start = stream.length
        if fresh:
            stream.parts.append(fresh)
            stream.length += len(fresh)
        buffer.dirty, buffer.touched = True, time.monotonic()
        await self._bus.publish(
            OUTPUT_CHANNEL,
            {
                "kind": "output",
                "command_id": str(command_id),
                "stream": message.stream,
                "offset": start,
                "data": fresh,
                "truncated": stream.truncated,
            },
        )
        return True

    async def _load(
        self, command_id: uuid.UUID, device_id: uuid.UUID, session: AsyncSession | None
    ) -> _Buffer | None:
        if (command_id, device_id) in self._refused:
            return None
        statement = select(
            Command.device_id,
            Command.status,
            Command.stdout,
            Command.stderr,
            Command.stdout_truncated,
            Command.stderr_truncated,
        ).where(Command.id == command_id)
        if session is not None:
            row = (await session.execute(statement)).first()
        else:
            async with self._sessions() as own:
                row = (await own.execute(statement)).first()
        if row is None or row.device_id != device_id:
            log.warning("device %s sent output for a command not its own: dropped", device_id)
            self._refuse(command_id, device_id)
            return None
        if row.status not in _LIVE:
            if CommandStatus(row.status).is_final:
                self._refuse(command_id, device_id)
            log.debug("output for %s command %s dropped", row.status, command_id)
            return None
        # Continue from what an earlier flush (maybe by another process) already stored.
        streams = {
            "stdout": _Stream([row.stdout] if row.stdout else [], len(row.stdout or "")),
            "stderr": _Stream([row.stderr] if row.stderr else [], len(row.stderr or "")),
        }
        streams["stdout"].truncated = bool(row.stdout_truncated)
        streams["stderr"].truncated = bool(row.stderr_truncated)
        return _Buffer(device_id, streams)

    def _refuse(self, command_id: uuid.UUID, device_id: uuid.UUID) -> None:
        if len(self._refused) >= _REFUSED_MEMORY:
            self._refused.clear()
        self._refused[(command_id, device_id)] = None

    async def started(self, command_id: str) -> None:
        """The agent acknowledged the command (call after that is committed)."""
        await self._publish_status(command_id, {"kind": "status", "status": "running"})

    async def finished(
        self,
        command_id: str,
        *,
        status: str = "",
        exit_code: int | None = None,
        error: str = "",
    ) -> None:
        """A final result is stored (call after it is committed): subscribers are told, and the
        buffer goes (the result holds the whole output)."""
        try:
            parsed = uuid.UUID(command_id)
        except ValueError:
            return
        self._buffers.pop(parsed, None)
        done = {"kind": "done", "status": status, "exit_code": exit_code, "error": error}
        await self._publish_status(command_id, done)

    async def statuses(self, events: list[dict[str, Any]]) -> None:
        """Many `status`/`done` events at once (a batch of acks and results, committed): one bus
        message per few hundred instead of one per command."""
        for event in events:
            if event.get("kind") == "done":
                self._buffers.pop(uuid.UUID(str(event["command_id"])), None)
        for start in range(0, len(events), _EVENTS_PER_MESSAGE):
            batch = events[start : start + _EVENTS_PER_MESSAGE]
            await self._bus.publish(OUTPUT_CHANNEL, {"kind": "batch", "events": batch})

    async def _publish_status(self, command_id: str, event: dict[str, Any]) -> None:
        await self._bus.publish(OUTPUT_CHANNEL, event | {"command_id": command_id})

    # ---- write-behind ------------------------------------------------------------------------

    async def flush(self) -> int:
        """Write the output that changed since the last flush into commands still running.
        Returns the number of commands written."""
        async with self._lock:
            now = time.monotonic()
            rows: list[dict[str, Any]] = []
            written: list[_Buffer] = []
            for command_id, buffer in list(self._buffers.items()):
                if not buffer.dirty:
                    if now - buffer.touched > _IDLE_DROP_S:
                        del self._buffers[command_id]
                    continue
                out, err = buffer.streams["stdout"], buffer.streams["stderr"]
                rows.append(
                    {
                        "b_id": command_id,
                        "b_stdout": out.text(),
                        "b_stderr": err.text(),
                        "b_stdout_truncated": out.truncated,
                        "b_stderr_truncated": err.truncated,
                    }
                )
                buffer.dirty = False
                written.append(buffer)
            if not rows:
                return 0
            try:
                async with self._sessions() as session:
                    connection = await session.connection()
                    await connection.execute(_WRITE_BEHIND, rows)
                    await session.commit()
            except Exception:
                for buffer in written:
                    buffer.dirty = True  # retried next interval
                raise
            return len(rows)

    # ---- the subscribers' side ---------------------------------------------------------------

    def subscribe(self, command_id: uuid.UUID) -> Subscription:
        subscription = Subscription(command_id)
        self._subscribers.setdefault(command_id, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        listeners = self._subscribers.get(subscription.command_id)
        if listeners is None:
            return
        listeners.discard(subscription)
        if not listeners:
            del self._subscribers[subscription.command_id]

    @property
    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._subscribers.values())

    def snapshot(self, command_id: uuid.UUID) -> OutputSnapshot | None:
        """What this process holds of a running command's output, if it is fed here."""
        buffer = self._buffers.get(command_id)
        if buffer is None:
            return None
        out, err = buffer.streams["stdout"], buffer.streams["stderr"]
        return OutputSnapshot(out.text(), err.text(), out.truncated, err.truncated)

    async def _on_bus_message(self, message: dict[str, Any]) -> None:
        if message.get("kind") == "batch":
            events = message.get("events")
            for event in events if isinstance(events, list) else ():
                if isinstance(event, dict) and event.get("kind") != "batch":
                    await self._on_bus_message(event)
            return
        try:
            command_id = uuid.UUID(str(message.get("command_id")))
        except ValueError:
            return
        for subscription in list(self._subscribers.get(command_id, ())):
            subscription.offer(message)


_COMMANDS = cast(Table, Command.__table__)
_WRITE_BEHIND = (
    update(_COMMANDS)
    .where(
        _COMMANDS.c.id == bindparam("b_id"),
        _COMMANDS.c.status.in_([status.value for status in _LIVE]),
    )
    .values(
        stdout=bindparam("b_stdout"),
        stderr=bindparam("b_stderr"),
        stdout_truncated=bindparam("b_stdout_truncated"),
        stderr_truncated=bindparam("b_stderr_truncated"),
    )
)
