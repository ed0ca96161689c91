"""The floor for command delivery: a bare `websockets` echo round trip on this machine, with
the server in its own process like Steward's."""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import time
from multiprocessing.synchronize import Event as StopEvent

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve

from bench.installation import free_port


async def _echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def _serve(port: int, ready: StopEvent, stop: StopEvent) -> None:
    async with serve(_echo, "127.0.0.1", port, compression=None):
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.1)


def _server_main(port: int, ready: StopEvent, stop: StopEvent) -> None:
    asyncio.run(_serve(port, ready, stop))


class EchoServer:
    """A bare `websockets` echo server in its own process, and one client connected to it."""

    FRAME = json.dumps(
        {"type": "command.dispatch", "command_id": "x" * 36, "command_type": "shell",
         "payload": {"command": "true"}, "timeout_s": 300.0}
    )  # fmt: skip  # the size of a `command.dispatch`

    def __init__(self) -> None:
        context = mp.get_context("spawn")
        self._ready, self._stop = context.Event(), context.Event()
        self._port = free_port()
        self._process = context.Process(
            target=_server_main, args=(self._port, self._ready, self._stop), daemon=True
        )
        self._ws: ClientConnection | None = None

    async def __aenter__(self) -> EchoServer:
        self._process.start()
        if not await asyncio.to_thread(self._ready.wait, 30):
            raise RuntimeError("echo server did not start")
        self._ws = await connect(f"ws://127.0.0.1:{self._port}", compression=None)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._ws is not None:
            await self._ws.close()
        self._stop.set()
        self._process.join(10)

    async def round_trip(self) -> float:
        """One round trip, in seconds."""
        assert self._ws is not None
        started = time.monotonic()
        await self._ws.send(self.FRAME)
        await self._ws.recv()
        return time.monotonic() - started

    async def round_trips(self, count: int) -> list[float]:
        """`count` round trips back to back (a busy loop: no process falls idle between)."""
        return [await self.round_trip() for _ in range(count)]
