"""WebSocket transport: one long-lived connection, `hello`/`welcome`, then frames both ways."""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from steward import __version__
from steward.agent._channel import Channel
from steward.agent._errors import (
    HandshakeFailed,
    ServerBusy,
    ServerUnreachable,
    UnexpectedResponse,
)
from steward.agent._http import authorization_header, error_for_status, websocket_url
from steward.agent._state import AgentState
from steward.agent._transport import Transport
from steward.protocol import (
    MAX_MESSAGE_BYTES,
    ErrorMessage,
    ProtocolError,
    Welcome,
    dump_message,
    parse_server_message,
)

logger = logging.getLogger("steward.agent")
TRY_AGAIN_LATER = 1013  # WebSocket close code: the server is overloaded

OPEN_TIMEOUT_S = 10.0
WELCOME_TIMEOUT_S = 10.0
PING_INTERVAL_S = 20.0


class WebSocketTransport(Transport):
    name = "ws"

    def __init__(self, state: AgentState, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.state = state
        self.url = websocket_url(state.server_url)
        self.ssl_context = ssl_context

    async def run(self, channel: Channel, *, until: float | None = None) -> None:
        ws = await self._connect()
        try:
            try:
                await ws.send(dump_message(channel.hello()))
                welcome = await self._await_welcome(ws, channel)
            except ConnectionClosed as exc:
                if exc.rcvd is not None and exc.rcvd.code == TRY_AGAIN_LATER:
                    # The server is shedding load, not breaking WebSockets: back off, stay on WS.
                    raise ServerBusy("the server asked to try again later") from exc
                raise HandshakeFailed(f"no welcome from the server: {exc!r}") from exc
            except TimeoutError as exc:
                raise HandshakeFailed(f"no welcome from the server: {exc!r}") from exc
            channel.on_connected(welcome)
            channel.streaming = True  # terminals and file requests ride on this connection
            logger.info("connected over WebSocket to %s as device %s", self.url, welcome.device_id)
            await self._exchange(ws, channel)
        except ConnectionClosed as exc:
            raise ServerUnreachable(f"WebSocket closed: {_describe_close(exc)}") from exc
        finally:
            await channel.end_streams()
            # Also reached when cancelled (agent stopping): send a proper close frame.
            await ws.close(code=1000, reason="agent stopping" if channel.stopping.is_set() else "")

    async def _connect(self) -> ClientConnection:
        headers = {
            "Authorization": authorization_header(self.state.agent_id, self.state.agent_secret)
        }
        tls: dict[str, Any] = (
            {"ssl": self.ssl_context} if self.ssl_context and self.url.startswith("wss:") else {}
        )
        try:
            return await connect(
                self.url,
                additional_headers=headers,
                user_agent_header=f"steward-agent/{__version__}",
                open_timeout=OPEN_TIMEOUT_S,
                ping_interval=PING_INTERVAL_S,
                ping_timeout=PING_INTERVAL_S,
                close_timeout=5,
                max_size=MAX_MESSAGE_BYTES,
                **tls,
            )
        except InvalidStatus as exc:
            response = exc.response
            error = error_for_status(
                response.status_code, bytes(response.body or b""), response.headers
            )
            if isinstance(error, UnexpectedResponse):
                error = HandshakeFailed(
                    f"WebSocket refused with HTTP {error.status}: {error.message}",
                    status=error.status,
                    code=error.code,
                )
            raise error from exc
        except (TimeoutError, EOFError, WebSocketException) as exc:  # (TimeoutError is an OSError)
            raise HandshakeFailed(
                f"no WebSocket handshake with {self.url}: {exc or type(exc).__name__}"
            ) from exc
        except OSError as exc:  # refused, unreachable, DNS, TLS: nothing to talk to at all
            raise ServerUnreachable(f"cannot connect to {self.url}: {exc}") from exc

    async def _await_welcome(self, ws: ClientConnection, channel: Channel) -> Welcome:
        async with asyncio.timeout(WELCOME_TIMEOUT_S):
            while True:
                message = _parse(await ws.recv())
                if isinstance(message, Welcome):
                    return message
                if isinstance(message, ErrorMessage):
                    raise UnexpectedResponse(message.message, code=message.code)
                if message is not None:
                    channel.handle(message)

    async def _exchange(self, ws: ClientConnection, channel: Channel) -> None:
        tasks = [
            asyncio.create_task(self._receive(ws, channel)),
            asyncio.create_task(self._send(ws, channel)),
        ]
        try:
            done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            task.result()  # re-raise ConnectionClosed and friends

    async def _receive(self, ws: ClientConnection, channel: Channel) -> None:
        # Ends quietly when the server closes normally; raises on an abnormal close.
        async for frame in ws:
            message = _parse(frame)
            if message is not None:
                channel.handle(message)
        logger.info("server closed the WebSocket: %s", _describe_close_codes(ws))

    async def _send(self, ws: ClientConnection, channel: Channel) -> None:
        while True:
            await channel.wait_for_work()
            if channel.full_due():  # first thing after `welcome`
                await ws.send(dump_message(await channel.full_heartbeat()))
            for message in channel.pending():
                await ws.send(dump_message(message))
                await channel.delivered([message])
            if channel.light_due():
                await ws.send(dump_message(await channel.light_heartbeat()))
            if channel.stopping.is_set():
                return


def _parse(frame: str | bytes) -> object | None:
    try:
        return parse_server_message(frame)
    except ProtocolError as exc:
        # Possibly a newer server's message type: skip it, keep the connection.
        logger.warning("ignoring a frame from the server (%s): %s", exc.code, exc.message)
        return None


def _describe_close(exc: ConnectionClosed) -> str:
    close = exc.rcvd or exc.sent
    if close is None:
        return "connection lost without a close frame"
    return f"code {close.code}" + (f" ({close.reason})" if close.reason else "")


def _describe_close_codes(ws: ClientConnection) -> str:
    code, reason = ws.close_code, ws.close_reason
    return f"code {code}" + (f" ({reason})" if reason else "")
