"""The live terminal sessions of this process, ending them from any replica (bus), and
watching them from any replica (`remote.py`)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from steward.server.bus import Bus
from steward.server.db.tenant_filter import bind_tenant
from steward.server.terminal.holdings import SessionHoldings
from steward.server.terminal.models import CloseReason, SessionStatus, TerminalSession
from steward.server.terminal.remote import RemoteWatching

if TYPE_CHECKING:
    from steward.server.terminal.live import LiveTerminal, Relay, SessionContext

BUS_CHANNEL = "terminals"


class TerminalRegistry:
    """The live sessions of this process; ends sessions on request from any replica."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        bus: Bus,
        relay: Relay,
        replica_id: str,
        holdings: SessionHoldings | None = None,
    ) -> None:
        self._sessions = sessions  # bound to each session's tenant when used
        self._bus = bus
        self.relay = relay
        self.holdings = holdings or SessionHoldings()  # what the leader's sweep knows of
        self.remote = RemoteWatching(bus, replica_id, self.get)
        self.sessions: dict[uuid.UUID, LiveTerminal] = {}
        # Tests shorten the policy's timeouts with this factor.
        self.time_scale = 1.0
        self._empty = asyncio.Event()
        bus.subscribe(BUS_CHANNEL, self._on_bus)

    def add(self, live: LiveTerminal) -> None:
        self.sessions[live.id] = live
        self.holdings.held(live.id)

    def remove(self, live: LiveTerminal) -> None:
        if self.sessions.get(live.id) is live:
            del self.sessions[live.id]
            self.holdings.released(live.id)
        if not self.sessions:
            self._empty.set()

    def get(self, session_id: uuid.UUID) -> LiveTerminal | None:
        return self.sessions.get(session_id)

    async def terminate(self, session_id: uuid.UUID, by: str) -> None:
        """End a session wherever it runs (here at once; elsewhere through the bus)."""
        live = self.sessions.get(session_id)
        if live is not None:
            live.request_stop(CloseReason.TERMINATED, by)
            return
        await self._bus.publish(
            BUS_CHANNEL, {"kind": "terminate", "session_id": str(session_id), "by": by[:254]}
        )

    async def _on_bus(self, message: dict[str, Any]) -> None:
        if message.get("kind") != "terminate":
            return
        try:
            session_id = uuid.UUID(str(message.get("session_id")))
        except ValueError:
            return
        live = self.sessions.get(session_id)
        if live is not None:
            live.request_stop(CloseReason.TERMINATED, str(message.get("by", ""))[:254])

    async def save_open(self, context: SessionContext, shell: str) -> None:
        async with self._sessions() as session:
            bind_tenant(session, context.tenant_id)
            row = await session.get(TerminalSession, context.session_id)
            if row is not None and row.status == SessionStatus.OPENING:
                row.status = SessionStatus.OPEN
                row.shell = shell[:255]
                await session.commit()

    async def save_end(self, context: SessionContext, **values: Any) -> None:
        async with self._sessions() as session:
            bind_tenant(session, context.tenant_id)
            row = await session.get(TerminalSession, context.session_id)
            if row is None:
                return
            row.status = values["status"]
            row.close_reason = values["reason"]
            row.closed_by = values["closed_by"][:254]
            row.exit_code = values["exit_code"]
            row.error = values["error"][:255]
            row.ended_at = values["ended_at"]
            if values["shell"]:
                row.shell = values["shell"][:255]
            row.recording_bytes = values["recording_bytes"]
            row.recording_sha256 = values["recording_sha256"]
            row.recording_failed = values["recording_failed"]
            row.output_chars = values["output_chars"]
            row.input_chars = values["input_chars"]
            if values["recording_failed"] and not values["recording_bytes"]:
                row.recording_path = ""
            await session.commit()

    async def aclose(self, timeout_s: float = 5.0) -> None:
        """The server stops: end every session here."""
        for live in list(self.sessions.values()):
            live.request_stop(CloseReason.SERVER_STOPPED)
        if self.sessions:
            self._empty.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._empty.wait(), timeout_s)
        await self.remote.aclose()
