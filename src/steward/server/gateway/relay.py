"""Interactive traffic between the console and an agent: terminal frames and file requests.

The console's request lands on any replica; the agent's WebSocket is held by one of them. The
relay carries frames between the two:

- to the agent: sent at once when the agent is connected to this process, otherwise published
  on the bus for the replica that holds it (`kind: relay` on the agents' channel), which
  remembers who asked (a *route*: session or request id -> replica) and says it took it (no
  such word within `ACCEPT_WAIT_S`: the agent is connected nowhere);
- from the agent: given to the listener of that session or request on this process, or
  published on the asking replica's own channel (`relay.<replica id>`).

Frames are not stored anywhere: if a replica or the agent's connection goes, its sessions and
requests end (listeners hear a `terminal.exit` or a failed `file.response`), and the console
says so. Every frame from an agent is checked against the device the session belongs to, so an
agent cannot write into another device's session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from steward.protocol import (
    FileRequest,
    FileResponse,
    ProtocolError,
    TerminalClose,
    TerminalExit,
    TerminalInput,
    TerminalOpen,
    TerminalOpened,
    TerminalOutput,
    TerminalResize,
    dump_message,
    parse_agent_message,
    parse_server_message,
)
from steward.server.bus import AGENT_CHANNEL, Bus, MonitoredBus
from steward.server.errors import StewardError

if TYPE_CHECKING:
    from steward.server.bus.presence import Presence
    from steward.server.gateway.hub import AgentConnection

log = logging.getLogger(__name__)

TerminalFrame = TerminalOpened | TerminalOutput | TerminalExit
AgentFrame = TerminalFrame | FileResponse
ToAgent = TerminalOpen | TerminalInput | TerminalResize | TerminalClose | FileRequest
Listener = Callable[[Any], Awaitable[None]]

ROUTE_IDLE_S = 3600.0  # a route nobody used for this long is forgotten (its session is dead)
DEFAULT_REQUEST_TIMEOUT_S = 30.0
# How long a replica waits for another one to say it holds the agent before calling it offline.
ACCEPT_WAIT_S = 3.0


class DeviceOffline(StewardError):
    """The device's agent is not connected over a WebSocket."""

    status_code = 409
    code = "device_offline"


class AgentTimeout(StewardError):
    """The agent did not answer in time."""

    status_code = 504
    code = "agent_timeout"


def _key_of(message: AgentFrame | ToAgent) -> str:
    return (
        message.request_id
        if isinstance(message, FileRequest | FileResponse)
        else message.session_id
    )


def _ended(message: AgentFrame) -> bool:
    return isinstance(message, TerminalExit | FileResponse)


@dataclass
class _Listener:
    on_message: Listener
    device_id: uuid.UUID | None = None  # bound by the first frame sent to an agent


@dataclass
class _Route:
    device_id: uuid.UUID
    reply_to: str
    used_at: float


class Relay:
    def __init__(
        self,
        bus: Bus,
        presence: Presence,
        connection_of: Callable[[uuid.UUID], AgentConnection | None],
    ) -> None:
        self._bus = bus
        self._connection_of = connection_of
        self.replica_id = presence.replica_id
        self._listeners: dict[str, _Listener] = {}
        self._routes: dict[str, _Route] = {}  # sessions of other replicas' consoles, held here
        self._accepts: dict[str, asyncio.Future[None]] = {}  # openings sent to other replicas
        # Frames from the bus are handled in arrival order by one task (a terminal's output
        # must not overtake itself).
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=10_000)
        self._inbox_task: asyncio.Task[None] | None = None
        bus.subscribe(self.channel(self.replica_id), self._on_reply)

    @staticmethod
    def channel(replica_id: str) -> str:
        return f"relay.{replica_id}"

    # ---- the console's side ------------------------------------------------------------------

    def listen(self, key: str, on_message: Listener) -> None:
        """Frames of session (or request) `key` from now on go to `on_message`, here."""
        self._listeners[key] = _Listener(on_message)

    def unlisten(self, key: str) -> None:
        self._listeners.pop(key, None)

    async def send(self, device_id: uuid.UUID, message: ToAgent) -> None:
        """Send one frame to the device's agent, wherever it is connected. Raises
        `DeviceOffline` when it is connected nowhere (checked for new sessions and requests;
        later frames of a session whose agent left are dropped: its listener hears the exit)."""
        key = _key_of(message)
        listener = self._listeners.get(key)
        if listener is not None:
            if listener.device_id is None:
                listener.device_id = device_id
            elif listener.device_id != device_id:
                raise StewardError("session belongs to another device", code="invalid_session")
        connection = self._connection_of(device_id)
        if connection is not None:
            try:
                await connection.send(dump_message(message))
            except Exception as exc:
                raise DeviceOffline("the connection to the agent broke") from exc
            return
        if not isinstance(self._bus, MonitoredBus):  # one process: nowhere else to look
            raise DeviceOffline("the device's agent is not connected over a WebSocket")
        opening = isinstance(message, TerminalOpen | FileRequest)
        accepted: asyncio.Future[None] | None = None
        if opening:  # the replica holding the agent says so (presence may lag a flush)
            accepted = asyncio.get_running_loop().create_future()
            self._accepts[key] = accepted
        try:
            await self._bus.publish(
                AGENT_CHANNEL,
                {
                    "kind": "relay",
                    "device_id": str(device_id),
                    "reply_to": self.replica_id,
                    "frame": dump_message(message),
                },
            )
            if accepted is not None:
                async with asyncio.timeout(ACCEPT_WAIT_S):
                    await accepted
        except TimeoutError:
            raise DeviceOffline("the device's agent is not connected over a WebSocket") from None
        finally:
            if accepted is not None:
                self._accepts.pop(key, None)

    async def request(
        self,
        device_id: uuid.UUID,
        request: FileRequest,
        *,
        timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
    ) -> FileResponse:
        """Send a file request and wait for its answer."""
        answer: asyncio.Future[FileResponse] = asyncio.get_running_loop().create_future()

        async def on_message(message: AgentFrame) -> None:
            if answer.done():
                return
            if isinstance(message, FileResponse):
                answer.set_result(message)
            elif isinstance(message, TerminalExit):  # what a listener hears when the agent left
                answer.set_exception(DeviceOffline("the agent disconnected"))

        self.listen(request.request_id, on_message)
        try:
            await self.send(device_id, request)
            async with asyncio.timeout(timeout_s):
                return await answer
        except TimeoutError:
            raise AgentTimeout(f"no answer from the agent within {timeout_s:g} s") from None
        finally:
            self.unlisten(request.request_id)

    # ---- the agent's side --------------------------------------------------------------------

    async def from_agent(self, device_id: uuid.UUID, message: AgentFrame) -> None:
        """A frame from an agent connected here."""
        key = _key_of(message)
        listener = self._listeners.get(key)
        if listener is not None:
            if listener.device_id != device_id:
                log.info("dropped a %s frame of another device from %s", message.type, device_id)
                return
            await self._deliver(listener, message)
            return
        route = self._routes.get(key)
        if route is None or route.device_id != device_id:
            return  # a session that ended, or a frame the agent had no business sending
        if _ended(message):
            del self._routes[key]
        else:
            route.used_at = time.monotonic()
        await self._bus.publish(
            self.channel(route.reply_to),
            {"device_id": str(device_id), "frame": dump_message(message)},
        )

    async def on_bus(self, connection: AgentConnection, message: dict[str, Any]) -> None:
        """A `relay` message for an agent connected here (from another replica's console)."""
        try:
            frame = parse_server_message(str(message.get("frame")))
            reply_to = str(message["reply_to"])
        except (ProtocolError, KeyError):
            log.warning("ignored a malformed relay message on the bus")
            return
        if not isinstance(frame, ToAgent):
            return
        key = _key_of(frame)
        if isinstance(frame, TerminalOpen | FileRequest):
            self._routes[key] = _Route(connection.device_id, reply_to, time.monotonic())
            await self._bus.publish(self.channel(reply_to), {"accepted": key})
        route = self._routes.get(key)
        if route is None or route.device_id != connection.device_id:
            return
        route.used_at = time.monotonic()
        try:
            await connection.send(dump_message(frame))
        except Exception:
            log.info("relay to %s failed", connection.device_id)

    async def disconnected(self, device_id: uuid.UUID) -> None:
        """The agent's WebSocket on this process closed: its sessions and requests end."""
        for key, listener in list(self._listeners.items()):
            if listener.device_id == device_id:
                await self._deliver(listener, _agent_left(key))
        for key, route in list(self._routes.items()):
            if route.device_id == device_id:
                del self._routes[key]
                frame = TerminalExit(session_id=key, error="the agent disconnected")
                await self._bus.publish(
                    self.channel(route.reply_to),
                    {"device_id": str(device_id), "frame": dump_message(frame), "gone": True},
                )

    def forget_idle(self) -> int:
        """Drop routes nobody used for `ROUTE_IDLE_S` (their console went away unannounced)."""
        cutoff = time.monotonic() - ROUTE_IDLE_S
        stale = [key for key, route in self._routes.items() if route.used_at < cutoff]
        for key in stale:
            del self._routes[key]
        return len(stale)

    # ---- delivery ----------------------------------------------------------------------------

    async def _on_reply(self, message: dict[str, Any]) -> None:
        accepted = self._accepts.get(str(message.get("accepted")))
        if accepted is not None:
            if not accepted.done():
                accepted.set_result(None)
            return
        # Synchronous up to the queue: bus tasks start in arrival order, so frames stay in order.
        if self._inbox_task is None or self._inbox_task.done():
            self._inbox_task = asyncio.get_running_loop().create_task(self._drain())
        try:
            self._inbox.put_nowait(message)
        except asyncio.QueueFull:
            log.warning("relay inbox full: a frame from another replica was dropped")

    async def _drain(self) -> None:
        while True:
            message = await self._inbox.get()
            try:
                device_id = uuid.UUID(str(message.get("device_id")))
                frame = parse_agent_message(str(message.get("frame")))
            except (ValueError, ProtocolError):
                log.warning("ignored a malformed relay reply on the bus")
                continue
            if not isinstance(frame, AgentFrame):
                continue
            key = _key_of(frame)
            listener = self._listeners.get(key)
            if listener is None or listener.device_id != device_id:
                continue
            if message.get("gone"):
                frame = _agent_left(key)
            await self._deliver(listener, frame)

    @staticmethod
    async def _deliver(listener: _Listener, message: AgentFrame) -> None:
        try:
            await listener.on_message(message)
        except Exception:
            log.exception("relay listener failed on a %s frame", message.type)

    async def aclose(self) -> None:
        if self._inbox_task is not None:
            self._inbox_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._inbox_task


def _agent_left(key: str) -> TerminalExit:
    """What a listener hears when the agent went away (a waiting request fails with
    `DeviceOffline`)."""
    return TerminalExit(session_id=key, error="the agent disconnected")
