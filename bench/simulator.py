"""Many light simulated agents speaking the real WebSocket protocol.

One asyncio loop runs thousands of agents; `Fleet` spreads N agents over several processes (up to
`PER_PROCESS` connections each: a process may hold at most 20,000 open files here). Each agent
connects with its credentials, sends `hello`, waits for `welcome`, sends light heartbeats at the
interval the server gives (and follows `agent.config`), and answers every `command.dispatch` at
once with `command.ack` and a succeeded `command.result` (a no-op).

Reconnecting mirrors the real agent in WebSocket mode (`steward.agent._agent`): a handshake
refused with 429/503 is retried after exactly its `Retry-After` (the server jitters it); any other
failure or closure is retried after an exponential backoff with full jitter (uniform in
[0, min(60, 2**n)] s), reset by a connection that lasted over 30 s.

In paced mode (`Fleet.set_rate`), the agents' own heartbeats stop and each worker sends light
heartbeats round robin over its connected agents at a set rate (scenario 4). Workers report to
the parent over a queue every 20 ms: agents welcomed, refusals, heartbeats sent, and each command
received (`time.monotonic()`, one clock for every process on Linux, and `time.time()` to compare
with the server's commit timestamp).
"""

from __future__ import annotations

import asyncio
import json
import math
import multiprocessing as mp
import queue
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event as StopEvent
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus, WebSocketException

from steward.protocol import MessageType

PER_PROCESS = 9_000
SOURCE_SPAN = 25_000  # connections per loopback source address (ephemeral ports: ~28,000)
CONNECTS_IN_FLIGHT = 200  # concurrent opening handshakes per process
REPORT_EVERY_S = 0.02
PACE_TICK_S = 0.005
# As the real agent (steward.agent): its timeouts and backoff.
OPEN_TIMEOUT_S = 10.0
WELCOME_TIMEOUT_S = 10.0
STABLE_CONNECTION_S = 30.0
BACKOFF_INITIAL_S, BACKOFF_CAP_S = 1.0, 60.0

Credentials = dict[str, str]
Receipt = tuple[str, float, float]  # command id, monotonic, wall clock


@dataclass
class Report:
    """What a worker process tells the parent: counters, and receipts since its last report."""

    worker: int
    welcomed: int  # agents holding a session now
    welcomes: int  # sessions opened so far
    refused: int  # handshakes refused with 429/503 (admission control), retried
    failed: int  # connections that failed or closed otherwise, retried
    beats: int  # light heartbeats sent so far
    applied: int  # the last rate change applied
    receipts: list[Receipt] = field(default_factory=list)


class _Backoff:
    def __init__(self) -> None:
        self.attempt = 0

    def next_delay(self) -> float:
        ceiling = min(BACKOFF_CAP_S, BACKOFF_INITIAL_S * 2 ** min(self.attempt, 32))
        self.attempt += 1
        return random.uniform(0, ceiling)


class _Agent:
    def __init__(self, index: int, creds: Credentials, ws_url: str, worker: _Worker) -> None:
        self.index = index
        self.creds = creds
        self.ws_url = ws_url
        self.worker = worker
        self.interval = 30.0
        self.ws: ClientConnection | None = None
        self.beat_frame = json.dumps(
            {
                "type": MessageType.HEARTBEAT_LIGHT,
                "cpu_percent": round(random.uniform(0, 100), 1),
                "memory_percent": round(random.uniform(0, 100), 1),
                "ip_addresses": [f"10.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}"],
                "uptime_s": 1000,
                "logged_in_users": [],
            }
        )
        source = 1 + index // SOURCE_SPAN
        self.options: dict[str, Any] = (
            {"local_addr": (f"127.0.0.{source}", 0)} if source > 1 else {}
        )

    async def run(self) -> None:
        """Stay connected like a real agent: when refused or closed, back off and retry."""
        backoff = _Backoff()
        while True:
            connected_at: list[float] = []
            try:
                async with self.worker.connects:
                    ws = await connect(
                        self.ws_url,
                        additional_headers=self._auth(),
                        compression=None,
                        open_timeout=OPEN_TIMEOUT_S,
                        ping_interval=None,
                        **self.options,
                    )
                await self._session(ws, connected_at)
                retry_after = None
            except InvalidStatus as refused:
                retry_after = _retry_after(refused)
                if retry_after is None:
                    self.worker.failed += 1
                else:
                    self.worker.refused += 1
            except (WebSocketException, OSError, TimeoutError, EOFError, ValueError):
                self.worker.failed += 1
                retry_after = None
            if connected_at and time.monotonic() - connected_at[0] > STABLE_CONNECTION_S:
                backoff.attempt = 0
            await asyncio.sleep(backoff.next_delay() if retry_after is None else retry_after)

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Agent {self.creds['agent_id']}:{self.creds['agent_secret']}"}

    async def _session(self, ws: ClientConnection, connected_at: list[float]) -> None:
        async with ws:
            hello = {
                "type": MessageType.HELLO,
                "protocol_version": 1,
                "agent_version": "bench",
                "hostname": self.creds.get("hostname", f"sim-{self.index}"),
            }
            await ws.send(json.dumps(hello))
            async with asyncio.timeout(WELCOME_TIMEOUT_S):
                welcome = json.loads(await ws.recv())
            if welcome.get("type") != MessageType.WELCOME:
                raise ValueError(f"expected welcome, got {welcome.get('type')!r}")
            connected_at.append(time.monotonic())
            self.interval = float(welcome["light_heartbeat_interval_s"])
            self.worker.joined(self, ws)
            beating = asyncio.create_task(self._beat(ws))
            try:
                async for raw in ws:
                    await self._handle(ws, json.loads(raw))
            finally:
                self.worker.left(self)
                beating.cancel()

    async def _handle(self, ws: ClientConnection, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == MessageType.COMMAND_DISPATCH:
            command_id = message["command_id"]
            self.worker.receipts.append((command_id, time.monotonic(), time.time()))
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
            if not self.worker.paced:
                await ws.send(self.beat_frame)
                self.worker.beats += 1
            await asyncio.sleep(self.interval)


def _retry_after(refused: InvalidStatus) -> float | None:
    """The wait a 429/503 asks for; None for any other refusal (then: back off)."""
    if refused.response.status_code not in (429, 503):
        return None
    try:
        return float(refused.response.headers.get("Retry-After", ""))
    except ValueError:
        return None


class _Worker:
    """The agents of one process, and what they report."""

    def __init__(self, number: int, first: int, creds: list[Credentials], ws_url: str) -> None:
        self.number = number
        self.agents = [_Agent(first + i, c, ws_url, self) for i, c in enumerate(creds)]
        self.connects = asyncio.Semaphore(CONNECTS_IN_FLIGHT)
        self.welcomed = self.welcomes = self.refused = self.failed = self.beats = 0
        self.receipts: list[Receipt] = []
        self.paced = False
        self.rate = 0.0
        self.applied = 0
        self._live: dict[int, _Agent] = {}
        self._live_list: list[_Agent] | None = None

    def joined(self, agent: _Agent, ws: ClientConnection) -> None:
        agent.ws = ws
        self.welcomed += 1
        self.welcomes += 1
        self._live[agent.index] = agent
        self._live_list = None

    def left(self, agent: _Agent) -> None:
        agent.ws = None
        self.welcomed -= 1
        self._live.pop(agent.index, None)
        self._live_list = None

    async def run(self, reports: mp.Queue[Report], control: mp.Queue[Any], stop: StopEvent) -> None:
        tasks = [asyncio.create_task(agent.run()) for agent in self.agents]
        pacer = asyncio.create_task(self._pace())
        try:
            while not stop.is_set():
                self._take_control(control)
                receipts, self.receipts = self.receipts, []
                reports.put(
                    Report(
                        self.number, self.welcomed, self.welcomes, self.refused, self.failed,
                        self.beats, self.applied, receipts,
                    )
                )  # fmt: skip
                await asyncio.sleep(REPORT_EVERY_S)
        finally:
            pacer.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(pacer, *tasks, return_exceptions=True)

    def _take_control(self, control: mp.Queue[Any]) -> None:
        while True:
            try:
                sequence, rate = control.get_nowait()
            except queue.Empty:
                return
            self.paced = rate is not None
            self.rate = rate or 0.0
            self.applied = sequence

    async def _pace(self) -> None:
        """In paced mode: light heartbeats at `self.rate` per second, round robin."""
        owed, last, turn = 0.0, time.monotonic(), 0
        while True:
            await asyncio.sleep(PACE_TICK_S)
            now = time.monotonic()
            # Owe at most a tenth of a second: a simulator that cannot keep up sends less.
            owed = min(owed + self.rate * (now - last), self.rate * 0.1 + 1)
            last = now
            if self._live_list is None:
                self._live_list = list(self._live.values())
            live = self._live_list
            if not self.paced or not live:
                owed = 0.0
                continue
            for _ in range(int(owed)):
                agent = live[turn % len(live)]
                turn += 1
                if agent.ws is None:
                    continue
                try:
                    await agent.ws.send(agent.beat_frame)
                except WebSocketException:
                    continue
                self.beats += 1
            owed -= int(owed)


def _worker_main(
    number: int,
    first: int,
    creds: list[Credentials],
    ws_url: str,
    reports: mp.Queue[Report],
    control: mp.Queue[Any],
    stop: StopEvent,
) -> None:
    asyncio.run(_Worker(number, first, creds, ws_url).run(reports, control, stop))


class Fleet:
    """N simulated agents in `ceil(N / PER_PROCESS)` processes (or more), seen from the parent."""

    def __init__(self, creds: list[Credentials], ws_url: str, processes: int = 1) -> None:
        context = mp.get_context("spawn")
        self.size = len(creds)
        self.receipts: dict[str, float] = {}  # command id -> when an agent first received it
        self.receipts_wall: dict[str, float] = {}  # the same, time.time()
        self.deliveries: Counter[str] = Counter()  # command id -> times received
        self._reports: dict[int, Report] = {}
        self._queue: mp.Queue[Report] = context.Queue()
        self._stop = context.Event()
        self._sequence = 0
        count = max(processes, math.ceil(len(creds) / PER_PROCESS))
        share = math.ceil(len(creds) / count)
        self._shares = [len(creds[n * share : (n + 1) * share]) for n in range(count)]
        self._controls: list[mp.Queue[Any]] = [context.Queue() for _ in range(count)]
        self._processes = [
            context.Process(
                target=_worker_main,
                args=(n, n * share, creds[n * share : (n + 1) * share], ws_url),
                kwargs={"reports": self._queue, "control": self._controls[n], "stop": self._stop},
                daemon=True,
            )
            for n in range(count)
        ]

    @property
    def processes(self) -> int:
        return len(self._processes)

    def _sum(self, name: str) -> int:
        return sum(int(getattr(report, name)) for report in self._reports.values())

    @property
    def welcomed(self) -> int:
        return self._sum("welcomed")

    @property
    def welcomes(self) -> int:
        return self._sum("welcomes")

    @property
    def refused(self) -> int:
        return self._sum("refused")

    @property
    def failed(self) -> int:
        return self._sum("failed")

    @property
    def beats(self) -> int:
        return self._sum("beats")

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

    async def set_rate(self, per_second: float | None, timeout: float = 10) -> None:
        """Paced heartbeats at `per_second` in all (spread by agents per process), or, with
        None, each agent's own interval again. Returns once every worker applied it."""
        self._sequence += 1
        for control, share in zip(self._controls, self._shares, strict=True):
            rate = None if per_second is None else per_second * share / max(1, self.size)
            control.put((self._sequence, rate))
        wanted = self._sequence
        if not await self.wait_until(
            lambda: (
                len(self._reports) == self.processes
                and all(r.applied >= wanted for r in self._reports.values())
            ),
            timeout,
        ):
            raise RuntimeError("simulator workers did not take the new heartbeat rate")

    def drain(self) -> None:
        """Take in what the workers reported so far."""
        while True:
            try:
                report = self._queue.get_nowait()
            except queue.Empty:
                break
            for command_id, monotonic, wall in report.receipts:
                self.deliveries[command_id] += 1
                self.receipts.setdefault(command_id, monotonic)
                self.receipts_wall.setdefault(command_id, wall)
            report.receipts = []
            self._reports[report.worker] = report

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
