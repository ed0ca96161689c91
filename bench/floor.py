"""The floor for command delivery: a bare `websockets` echo round trip on this machine, with
the server in its own process like Steward's."""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import time
from multiprocessing.synchronize import Event as StopEvent

from websockets.asyncio.client import connect
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


async def echo_round_trips(count: int) -> list[float]:
    """`count` sequential round trips of a frame the size of a `command.dispatch`, in seconds."""
    context = mp.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    port = free_port()
    process = context.Process(target=_server_main, args=(port, ready, stop), daemon=True)
    process.start()
    try:
        if not ready.wait(30):
            raise RuntimeError("echo server did not start")
        frame = json.dumps(
            {"type": "command.dispatch", "command_id": "x" * 36, "command_type": "shell",
             "payload": {"command": "true"}, "timeout_s": 300.0}
        )  # fmt: skip
        times = []
        async with connect(f"ws://127.0.0.1:{port}", compression=None) as ws:
            for _ in range(count):
                started = time.monotonic()
                await ws.send(frame)
                await ws.recv()
                times.append(time.monotonic() - started)
        return times
    finally:
        stop.set()
        process.join(10)
