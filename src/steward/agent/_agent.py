"""The `Agent`: keeps a connection to the server up (WebSocket, or HTTP polling as a
fallback), reconnecting with backoff, until `stop()`."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from enum import StrEnum
from pathlib import Path

import httpx

from steward import __version__
from steward.agent._channel import Channel
from steward.agent._collector import Collector
from steward.agent._errors import (
    AuthenticationError,
    HandshakeFailed,
    ServerBusy,
    TransportError,
)
from steward.agent._http import Backoff
from steward.agent._ledger import Ledger
from steward.agent._poll import PollTransport
from steward.agent._state import AgentState, default_state_dir, load_state
from steward.agent._transport import Transport
from steward.agent._websocket import WebSocketTransport

logger = logging.getLogger("steward.agent")

# Refused credentials are retried slowly: an operator may re-enable the agent on the server.
AUTH_RETRY_S = 60.0
# A connection that lasted this long resets the backoff.
STABLE_CONNECTION_S = 30.0
# In auto mode, this many failed WebSocket handshakes in a row switch to polling ...
WS_FAILURES_BEFORE_POLL = 3
# ... for this long, then the WebSocket is tried again.
POLL_FALLBACK_S = 300.0
HTTP_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


class TransportMode(StrEnum):
    AUTO = "auto"  # WebSocket; polling for a while when WebSockets keep failing
    WS = "ws"
    POLL = "poll"


class Agent:
    """A running agent. Construct it from an enrolled state, then `await agent.run()`; it
    returns after `agent.stop()` (callable from any thread or a signal handler).

        agent = Agent.from_state_dir(Path("/var/lib/steward-agent"), transport="ws")
        task = asyncio.create_task(agent.run())
        ...
        agent.stop(); await task

    `http_transport` replaces httpx's network layer for polling (e.g. `httpx.ASGITransport`
    to drive an in-process server); `ssl_context` is used for https/wss.
    """

    def __init__(
        self,
        state: AgentState,
        *,
        state_dir: Path,
        transport: TransportMode | str = TransportMode.AUTO,
        collector: Collector | None = None,
        http_transport: httpx.AsyncBaseTransport | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.state = state
        self.state_dir = state_dir
        self.mode = TransportMode(transport)
        self.ledger = Ledger.in_dir(state_dir)
        self.channel = Channel(self.ledger, collector or Collector())
        self._http_transport = http_transport
        self._ssl_context = ssl_context
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested = False
        self.current_transport: str | None = None

    @classmethod
    def from_state_dir(cls, state_dir: Path | None = None, **options: object) -> Agent:
        """Load `state.json` from `state_dir` (default: `default_state_dir()`). Raises
        `NotEnrolled` when the agent has not been enrolled."""
        state_dir = state_dir or default_state_dir()
        return cls(load_state(state_dir), state_dir=state_dir, **options)  # type: ignore[arg-type]

    @property
    def connected(self) -> bool:
        """Whether the server has accepted the agent on the current connection."""
        return self.channel.is_connected

    def stop(self) -> None:
        """Ask `run()` to close the connection cleanly and return. Thread-safe, idempotent."""
        self._stop_requested = True
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self.channel.stop()
        else:
            loop.call_soon_threadsafe(self.channel.stop)

    async def run(self) -> None:
        """Stay connected until `stop()`. Running commands are stopped on the way out."""
        if self._loop is not None:
            raise RuntimeError("Agent.run() can only be called once")
        self._loop = asyncio.get_running_loop()
        if self._stop_requested:
            self.channel.stop()
        verify: ssl.SSLContext | bool = self._ssl_context or True
        headers = {"User-Agent": f"steward-agent/{__version__}"}
        try:
            async with httpx.AsyncClient(
                transport=self._http_transport, timeout=HTTP_TIMEOUT, verify=verify, headers=headers
            ) as http:
                await self._stay_connected(
                    WebSocketTransport(self.state, ssl_context=self._ssl_context),
                    PollTransport(self.state, http),
                )
        finally:
            await self.channel.aclose()
            logger.info("agent stopped")

    async def _stay_connected(self, websocket: Transport, poll: Transport) -> None:
        channel = self.channel
        backoff = Backoff()
        chooser = _TransportChooser(self.mode)
        while not channel.stopping.is_set():
            polling = chooser.polling()
            transport = poll if polling else websocket
            self.current_transport = transport.name
            channel.begin_connection()
            error = await self._run_until_stopped(transport, chooser.poll_until)
            channel.is_connected = False
            if channel.stopping.is_set():
                return
            connected_at = channel.connected_at
            if connected_at is not None and time.monotonic() - connected_at > STABLE_CONNECTION_S:
                backoff.reset()
            switched = chooser.record(polling, connected=connected_at is not None, error=error)
            if error is None:
                delay = 0.0 if polling else backoff.next_delay()
                if not polling:
                    logger.info("connection closed by the server; reconnecting in %.1f s", delay)
            elif isinstance(error, AuthenticationError):
                delay = AUTH_RETRY_S
                logger.error(
                    "server refused the agent's credentials (%s); retry in %.0f s", error, delay
                )
            elif isinstance(error, ServerBusy) and error.retry_after is not None:
                delay = error.retry_after
                logger.warning("server busy; retrying in %.1f s as it asked", delay)
            else:
                delay = 0.0 if switched else backoff.next_delay()
                logger.warning("%s transport: %s; retrying in %.1f s", transport.name, error, delay)
            await channel.sleep(delay)

    async def _run_until_stopped(
        self, transport: Transport, until: float | None
    ) -> Exception | None:
        """Run one connection; cancel it (closing it cleanly) when the agent stops. Returns
        the error it ended with, if any."""
        session = asyncio.create_task(transport.run(self.channel, until=until))
        stopping = asyncio.create_task(self.channel.stopping.wait())
        try:
            await asyncio.wait({session, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not session.done():
                session.cancel()
                await asyncio.wait({session})
        if session.cancelled():
            return None
        error = session.exception()
        if error is None:
            return None
        if not isinstance(error, TransportError | AuthenticationError):
            logger.error("unexpected error in the %s transport", transport.name, exc_info=error)
        return error if isinstance(error, Exception) else None


class _TransportChooser:
    """Which transport to use next. In auto mode: the WebSocket; after
    `WS_FAILURES_BEFORE_POLL` failed handshakes in a row (something between agent and server
    does not let WebSockets through), polling for `POLL_FALLBACK_S` — unless polling fails as
    well before it ever worked: then the server is down, and the WebSocket is tried again."""

    def __init__(self, mode: TransportMode) -> None:
        self.mode = mode
        self.poll_until: float | None = None  # in auto mode, while falling back
        self._handshake_failures = 0
        self._poll_worked = False

    def polling(self) -> bool:
        if self.mode is not TransportMode.AUTO:
            return self.mode is TransportMode.POLL
        if self.poll_until is not None and time.monotonic() >= self.poll_until:
            self.poll_until = None
        return self.poll_until is not None

    def record(self, polling: bool, *, connected: bool, error: Exception | None) -> bool:
        """Note how a connection went; True when that switched the transport."""
        if self.mode is not TransportMode.AUTO:
            return False
        if polling:
            self._poll_worked = self._poll_worked or connected
            if error is not None and not self._poll_worked:
                logger.warning("polling fails too; trying the WebSocket again")
                self.poll_until = None
                return True
            return False
        if connected:
            self._handshake_failures = 0
        elif isinstance(error, HandshakeFailed):
            self._handshake_failures += 1
            if self._handshake_failures >= WS_FAILURES_BEFORE_POLL:
                logger.warning(
                    "WebSocket handshake failed %d times; polling for %.0f s",
                    self._handshake_failures,
                    POLL_FALLBACK_S,
                )
                self._handshake_failures = 0
                self._poll_worked = False
                self.poll_until = time.monotonic() + POLL_FALLBACK_S
                return True
        return False
