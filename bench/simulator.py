"""Many light simulated agents speaking the real WebSocket protocol.

One asyncio loop runs thousands of agents; `Fleet` spreads N agents over several processes (up to
`PER_PROCESS` connections each). Each agent connects with its credentials, sends `hello`, waits
for `welcome`, sends light heartbeats at the interval the server gives (and follows
`agent.config`), and answers every `command.dispatch` at once with `command.ack` and a succeeded
`command.result` (a no-op). Workers report to the parent process over a queue: how many agents
are welcomed, and when each command was received (`time.monotonic()`, one clock for every
process on Linux).
"""

from __future__ import annotations

import asyncio
import json
import math
import multiprocessing as mp
import queue
import random
import time
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event as StopEvent
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from steward.protocol import MessageType

PER_PROCESS = 9_000
CONNECTS_IN_FLIGHT = 200  # concurrent opening handshakes per process
REPORT_EVERY_S = 0.02

Credentials = dict[str, str]


@dataclass
class Report:
    """What a worker process tells the parent since its last report."""

    worker: int
    welcomed: int  # agents holding a session now
    refusals: int  # handshakes refused (429) or dropped, retried
    receipts: list[tuple[str, float]] = field(default_factory=list)  # (command id, monotonic)


class _Agent:
    def __init__(self, index: int, creds: Credentials, ws_url: str, worker: _Worker) -> None:
        self.index = index
        self.creds = creds
        self.ws_url = ws_url
        self.worker = worker
        self.interval = 30.0

    async def run(self) -> None:
        """Stay connected like a real agent: when refused or closed, back off and retry."""
        while True:
            try:
                async with self.worker.connects:
                    ws = await connect(
                        self.ws_url,
                        additional_headers=self._auth(),
                        compression=None,
                        open_timeout=120,
                        ping_interval=None,
                    )
                await self._session(ws)
            except InvalidStatus as refused:
                self.worker.refusals += 1
                retry_after = float(refused.response.headers.get("Retry-After", "2"))
                await asyncio.sleep(retry_after * random.uniform(0.5, 1.0))
            except (ConnectionClosed, OSError, TimeoutError):
                self.worker.refusals += 1
                await asyncio.sleep(random.uniform(0.5, 2.0))

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Agent {self.creds['agent_id']}:{self.creds['agent_secret']}"}

    async def _session(self, ws: ClientConnection) -> None:
        async with ws:
            hello = {
                "type": MessageType.HELLO,
                "protocol_version": 1,
                "agent_version": "bench",
                "hostname": f"sim-{self.index}",
            }
            await ws.send(json.dumps(hello))
            welcome = json.loads(await ws.recv())
            if welcome.get("type") != MessageType.WELCOME:
                raise ConnectionError(f"expected welcome, got {welcome.get('type')!r}")
            self.interval = float(welcome["light_heartbeat_interval_s"])
            self.worker.welcomed += 1
            beating = asyncio.create_task(self._beat(ws))
            try:
                async for raw in ws:
                    await self._handle(ws, json.loads(raw))
            finally:
                self.worker.welcomed -= 1
                beating.cancel()

    async def _handle(self, ws: ClientConnection, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == MessageType.COMMAND_DISPATCH:
            command_id = message["command_id"]
            self.worker.receipts.append((command_id, time.monotonic()))
            ack = {"type": MessageType.COMMAND_ACK, "command_id": command_id}
            result = {
                "type": MessageType.COMMAND_RESULT,
                "command_id": command_id,
                "status": "succeeded",
                "exit_code": 0,
            }
            await ws.send(json.dumps(ack))
            await ws.send(json.dumps(result))
        elif kind == MessageType.AGENT_CONFIG:
            self.interval = float(message["light_heartbeat_interval_s"])

    async def _beat(self, ws: ClientConnection) -> None:
        await asyncio.sleep(random.uniform(0, self.interval))  # spread, as real agents are
        while True:
            beat = {
                "type": MessageType.HEARTBEAT_LIGHT,
                "cpu_percent": round(random.uniform(0, 100), 1),
                "memory_percent": round(random.uniform(0, 100), 1),
                "ip_addresses": [f"10.{self.index >> 16 & 255}.{self.index >> 8 & 255}.1"],
                "uptime_s": 1000,
                "logged_in_users": [],
            }
            await ws.send(json.dumps(beat))
            await asyncio.sleep(self.interval)


class _Worker:
    """The agents of one process, and what they report."""

    def __init__(self, number: int, creds: list[Credentials], ws_url: str) -> None:
        self.number = number
        self.agents = [
            _Agent(number * PER_PROCESS + i, c, ws_url, self) for i, c in enumerate(creds)
        ]
        self.connects = asyncio.Semaphore(CONNECTS_IN_FLIGHT)
        self.welcomed = 0
        self.refusals = 0
        self.receipts: list[tuple[str, float]] = []

    async def run(self, reports: mp.Queue[Report], stop: StopEvent) -> None:
        tasks = [asyncio.create_task(agent.run()) for agent in self.agents]
        try:
            while not stop.is_set():
                receipts, self.receipts = self.receipts, []
                reports.put(Report(self.number, self.welcomed, self.refusals, receipts))
                await asyncio.sleep(REPORT_EVERY_S)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def _worker_main(
    number: int, creds: list[Credentials], ws_url: str, reports: mp.Queue[Report], stop: StopEvent
) -> None:
    asyncio.run(_Worker(number, creds, ws_url).run(reports, stop))


class Fleet:
    """N simulated agents in `ceil(N / PER_PROCESS)` processes, seen from the parent."""

    def __init__(self, creds: list[Credentials], ws_url: str) -> None:
        context = mp.get_context("spawn")
        self.size = len(creds)
        self.receipts: dict[str, float] = {}  # command id -> when an agent received it
        self.refusals = 0
        self._welcomed: dict[int, int] = {}
        self._refusals: dict[int, int] = {}
        self._reports: mp.Queue[Report] = context.Queue()
        self._stop = context.Event()
        count = max(1, math.ceil(len(creds) / PER_PROCESS))
        self._processes = [
            context.Process(
                target=_worker_main,
                args=(n, creds[n * PER_PROCESS : (n + 1) * PER_PROCESS], ws_url),
                kwargs={"reports": self._reports, "stop": self._stop},
                daemon=True,
            )
            for n in range(count)
        ]

    @property
    def processes(self) -> int:
        return len(self._processes)

    @property
    def welcomed(self) -> int:
        return sum(self._welcomed.values())

    def start(self) -> None:
        for process in self._processes:
            process.start()

    def stop(self) -> None:
        self._stop.set()
        for process in self._processes:
            if process.pid is None:
                continue  # never started
            process.join(15)
            if process.is_alive():
                process.kill()

    def drain(self) -> None:
        """Take in what the workers reported so far."""
        while True:
            try:
                report = self._reports.get_nowait()
            except queue.Empty:
                break
            self._welcomed[report.worker] = report.welcomed
            self._refusals[report.worker] = report.refusals
            self.receipts.update(report.receipts)
        self.refusals = sum(self._refusals.values())

    async def wait_until(self, done: Any, timeout: float, interval: float = 0.005) -> bool:
        """Drain reports until `done()` is true (True) or `timeout` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        while True:
            self.drain()
            if done():
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(interval)
