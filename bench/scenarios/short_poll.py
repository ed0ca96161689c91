"""The classic design, for comparison: agents polling `POST /api/agent/v1/poll` every 2 s."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import httpx

from bench.installation import POLL_TENANT, log_in, tenant_client
from bench.report import p50_p99
from bench.scenarios import NO_OP, Bench
from bench.simulator import Credentials
from steward.protocol import MessageType

POLL_EVERY_S = 2.0
SUBMIT_EVERY_S = 0.05


class _Poller:
    def __init__(self, creds: Credentials, http: httpx.AsyncClient, receipts: dict[str, float]):
        self.creds = creds
        self.http = http
        self.receipts = receipts
        self.outbox: list[dict[str, Any]] = []
        self.polls = 0

    async def run(self) -> None:
        auth = {"Authorization": f"Agent {self.creds['agent_id']}:{self.creds['agent_secret']}"}
        beat = {
            "type": MessageType.HEARTBEAT_LIGHT, "cpu_percent": 5.0, "memory_percent": 20.0,
            "ip_addresses": ["10.255.0.1"], "uptime_s": 1000, "logged_in_users": [],
        }  # fmt: skip
        await asyncio.sleep(random.uniform(0, POLL_EVERY_S))
        while True:
            started = time.monotonic()
            messages, self.outbox = [beat, *self.outbox], []
            body = {"agent_version": "bench", "messages": messages}
            response = await self.http.post("/api/agent/v1/poll", json=body, headers=auth)
            received = time.monotonic()
            self.polls += 1
            if response.status_code == 200:
                for message in response.json()["messages"]:
                    if message["type"] == MessageType.COMMAND_DISPATCH:
                        self._answer(message["command_id"], received)
            await asyncio.sleep(max(0.0, POLL_EVERY_S - (time.monotonic() - started)))

    def _answer(self, command_id: str, received: float) -> None:
        self.receipts.setdefault(command_id, received)
        self.outbox += [
            {"type": MessageType.COMMAND_ACK, "command_id": command_id},
            {"type": MessageType.COMMAND_RESULT, "command_id": command_id,
             "status": "succeeded", "exit_code": 0},
        ]  # fmt: skip


async def short_poll(bench: Bench) -> None:
    """`--pollers` devices poll every 2 s; `--poll-commands` no-op commands go to random ones
    (one every 50 ms): API submission -> receipt. Also the server CPU while they poll, and
    what that makes for 20,000 pollers (10,000 polls/s), over the CPU without them."""
    async with tenant_client(bench.server, POLL_TENANT) as api:
        await log_in(api)
        await _run(bench, api)


async def _run(bench: Bench, api: httpx.AsyncClient) -> None:
    report, args = bench.report, bench.args
    receipts: dict[str, float] = {}
    # The server's CPU without the pollers first: what they add is theirs.
    cpu_before, window_started = bench.server.cpu_seconds(), time.monotonic()
    await asyncio.sleep(POLL_EVERY_S * 2)
    baseline = (bench.server.cpu_seconds() - cpu_before) / (time.monotonic() - window_started)
    limits = httpx.Limits(max_connections=len(bench.pollers))
    async with httpx.AsyncClient(base_url=bench.server.url, timeout=30, limits=limits) as http:
        pollers = [_Poller(creds, http, receipts) for creds in bench.pollers]
        tasks = [asyncio.create_task(poller.run()) for poller in pollers]
        try:
            await asyncio.sleep(POLL_EVERY_S * 2)  # every poller has polled
            # CPU per poll: a window with polls only (the WebSocket agents idle at 30 s beats).
            cpu_before, polls_before = bench.server.cpu_seconds(), sum(p.polls for p in pollers)
            window_started = time.monotonic()
            await asyncio.sleep(POLL_EVERY_S * 2)
            window = time.monotonic() - window_started
            cpu = (bench.server.cpu_seconds() - cpu_before) / window - baseline
            polls = (sum(p.polls for p in pollers) - polls_before) / window
            submitted: dict[str, float] = {}
            for _ in range(args.poll_commands):
                device_id = random.choice(bench.pollers)["device_id"]
                sent = time.monotonic()
                response = await api.post(f"/api/v1/devices/{device_id}/commands", json=NO_OP)
                response.raise_for_status()
                submitted[response.json()["id"]] = sent
                await asyncio.sleep(max(0.0, SUBMIT_EVERY_S - (time.monotonic() - sent)))
            deadline = time.monotonic() + POLL_EVERY_S * 5
            while not submitted.keys() <= receipts.keys() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    latency = [receipts[c] - at for c, at in submitted.items() if c in receipts]
    missing = len(submitted) - len(latency)
    report.figure(
        f"HTTP short-poll, {len(pollers)} pollers every 2 s: API -> receipt",
        p50_p99(latency) + (f", {missing} not received" if missing else ""),
    )
    report.figure(
        "server CPU the polls add",
        f"{cpu * 100:.1f} % of one core at {polls:.0f} polls/s "
        f"(~{cpu / max(polls, 1) * 10_000:.1f} cores for 20,000 pollers)",
    )
