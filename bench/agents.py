"""Agent-channel benchmark: N simulated agents on one real server process.

    .venv/bin/python bench/agents.py --agents 2000 --interval 2 --commands 200

Starts `steward serve` on a fresh SQLite database (or `--database-url`), enrolls N agents over
HTTP, connects them over WebSockets, lets them send light heartbeats every `--interval` seconds
(the server's light interval is set to the same), then submits commands through the API to random
agents, which answer at once. Prints connection time, heartbeat throughput, command delivery and
round-trip latency (p50/p99), and the server's memory per connected agent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PASSWORD = "bench-password-1"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class SimAgent:
    def __init__(self, index: int, creds: dict[str, str], ws_url: str) -> None:
        self.index = index
        self.creds = creds
        self.ws_url = ws_url
        self.dispatch_seen: dict[str, float] = {}
        self.sent = 0
        self.connected = asyncio.Event()
        self.refusals = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected like a real agent: refused or closed, wait (Retry-After) and retry."""
        while not stop.is_set():
            try:
                await self._session(stop)
            except InvalidStatus as refused:
                self.refusals += 1
                retry_after = refused.response.headers.get("Retry-After", "5")
                await asyncio.sleep(float(retry_after) * random.uniform(0.5, 1.0))
            except (ConnectionClosed, OSError):
                self.refusals += 1
                await asyncio.sleep(random.uniform(1, 5))

    async def _session(self, stop: asyncio.Event) -> None:
        headers = {"Authorization": f"Agent {self.creds['agent_id']}:{self.creds['agent_secret']}"}
        async with connect(
            self.ws_url, additional_headers=headers, compression=None, open_timeout=60
        ) as ws:
            await ws.send(
                json.dumps(
                    {"type": "hello", "agent_version": "bench", "hostname": f"sim-{self.index}"}
                )
            )
            welcome = json.loads(await ws.recv())
            interval = float(welcome["light_heartbeat_interval_s"])
            self.connected.set()
            sender = asyncio.create_task(self._beat(ws, interval, stop))
            try:
                async for raw in ws:
                    message = json.loads(raw)
                    if message["type"] == "command.dispatch":
                        command_id = message["command_id"]
                        self.dispatch_seen[command_id] = time.perf_counter()
                        await ws.send(json.dumps({"type": "command.ack", "command_id": command_id}))
                        await ws.send(
                            json.dumps(
                                {
                                    "type": "command.result",
                                    "command_id": command_id,
                                    "status": "succeeded",
                                    "exit_code": 0,
                                    "stdout": "ok\n",
                                }
                            )
                        )
                    elif message["type"] == "agent.config":
                        interval = float(message["light_heartbeat_interval_s"])
                    if stop.is_set():
                        break
            finally:
                sender.cancel()

    async def _beat(self, ws: object, interval: float, stop: asyncio.Event) -> None:
        await asyncio.sleep(random.uniform(0, interval))  # spread like real agents
        while not stop.is_set():
            beat = {
                "type": "heartbeat.light",
                "cpu_percent": random.uniform(0, 100),
                "memory_percent": random.uniform(0, 100),
                "ip_addresses": [f"10.0.{self.index // 250}.{self.index % 250}"],
                "uptime_s": 1000,
                "logged_in_users": [],
            }
            await ws.send(json.dumps(beat))  # type: ignore[attr-defined]
            self.sent += 1
            await asyncio.sleep(interval)


async def _enroll_all(url: str, pins: list[str], concurrency: int = 50) -> list[dict[str, str]]:
    limiter = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:

        async def one(index: int, pin: str) -> dict[str, str]:
            async with limiter:
                response = await client.post(
                    "/api/agent/v1/enroll",
                    json={"pin": pin, "machine_id": f"bench-{index}", "hostname": f"sim-{index}"},
                )
                response.raise_for_status()
                return response.json()

        return await asyncio.gather(*(one(i, p) for i, p in enumerate(pins)))


def _cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [str(BIN / "steward"), *args],
        env=env,
        capture_output=True,
        text=True,
        input=stdin,
        check=True,
    )
    return result.stdout


async def main(args: argparse.Namespace) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="steward-bench-"))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = os.environ | {
        "STEWARD_DATA_DIR": str(data_dir),
        "STEWARD_LIGHT_HEARTBEAT_INTERVAL_S": str(args.interval),
        "STEWARD_WATCHED_HEARTBEAT_INTERVAL_S": str(args.interval),
        "STEWARD_LOG_LEVEL": "warning",
    }
    if args.database_url:
        env["STEWARD_DATABASE_URL"] = args.database_url
    _cli(env, "db", "upgrade")
    _cli(env, "tenant", "create", "bench", "--name", "Bench")
    _cli(
        env,
        "user",
        "create",
        "--tenant",
        "bench",
        "--email",
        "b@bench.example",
        "--role",
        "ADMIN",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    server = subprocess.Popen([str(BIN / "steward"), "serve", "--port", str(port)], env=env)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=60) as api:
            for _ in range(200):
                try:
                    if (await api.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            token = (
                await api.post(
                    "/api/v1/auth/login",
                    json={"tenant": "bench", "email": "b@bench.example", "password": PASSWORD},
                )
            ).json()["access_token"]
            api.headers["Authorization"] = f"Bearer {token}"
            pins = [
                (await api.post("/api/v1/enrollment/pins", json={"ttl_s": 3600})).json()["pin"]
                for _ in range(args.agents)
            ]
            started = time.perf_counter()
            creds = await _enroll_all(url, pins)
            enroll_s = time.perf_counter() - started
            process = psutil.Process(server.pid)
            rss_before = process.memory_info().rss

            stop = asyncio.Event()
            agents = [
                SimAgent(i, c, url.replace("http", "ws") + "/api/agent/v1/ws")
                for i, c in enumerate(creds)
            ]
            started = time.perf_counter()
            tasks = [asyncio.create_task(a.run(stop)) for a in agents]
            await asyncio.wait_for(asyncio.gather(*(a.connected.wait() for a in agents)), 300)
            connect_s = time.perf_counter() - started
            await asyncio.sleep(args.settle)
            rss_after = process.memory_info().rss

            sent_before = sum(a.sent for a in agents)
            window_start = time.perf_counter()
            cpu_before = process.cpu_times()
            await asyncio.sleep(args.measure)
            window = time.perf_counter() - window_start
            cpu_after = process.cpu_times()
            beats = sum(a.sent for a in agents) - sent_before
            server_cpu = (
                cpu_after.user + cpu_after.system - cpu_before.user - cpu_before.system
            ) / window

            delivery: list[float] = []
            round_trip: list[float] = []
            for _ in range(args.commands):
                agent = random.choice(agents)
                submitted = time.perf_counter()
                response = await api.post(
                    f"/api/v1/devices/{agent.creds['device_id']}/commands",
                    json={"type": "shell", "payload": {"command": "true"}},
                )
                command_id = response.json()["id"]
                while command_id not in agent.dispatch_seen:
                    await asyncio.sleep(0.0005)
                delivery.append(agent.dispatch_seen[command_id] - submitted)
                while (await api.get(f"/api/v1/commands/{command_id}")).json()[
                    "status"
                ] != "succeeded":
                    await asyncio.sleep(0.002)
                round_trip.append(time.perf_counter() - submitted)
            devices = await api.get("/api/v1/devices", params={"online": "true", "limit": 1})
            online = int(devices.headers["x-total-count"])
            list_times = []
            for _ in range(20):
                t0 = time.perf_counter()
                await api.get(
                    "/api/v1/devices",
                    params={"limit": 100, "offset": random.randint(0, max(0, args.agents - 100))},
                )
                list_times.append(time.perf_counter() - t0)
            stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        server.terminate()
        server.wait(30)

    def ms(values: list[float]) -> str:
        p50, p99 = statistics.median(values) * 1000, _percentile(values, 0.99) * 1000
        return f"p50 {p50:.1f} ms, p99 {p99:.1f} ms (n={len(values)})"

    per_agent_kib = (rss_after - rss_before) / args.agents / 1024
    report = [
        ("agents", f"{args.agents}, light heartbeat every {args.interval:g} s"),
        ("database", args.database_url or "SQLite (WAL)"),
        ("enroll all", f"{enroll_s:.1f} s ({args.agents / enroll_s:.0f}/s)"),
        ("connect all", f"{connect_s:.1f} s ({args.agents / connect_s:.0f}/s)"),
        ("refused, retried", str(sum(a.refusals for a in agents))),
        ("online per API", str(online)),
        ("heartbeats", f"{beats / window:.0f}/s over {window:.0f} s"),
        ("server CPU", f"{server_cpu * 100:.0f} % of one core"),
        ("server memory", f"{rss_after / 2**20:.0f} MiB, {per_agent_kib:.1f} KiB per agent"),
        ("command delivery", ms(delivery) + " (API call to agent)"),
        ("command round trip", ms(round_trip) + " (incl. polling the result)"),
        ("device list page", ms(list_times) + f" (100 of {args.agents})"),
    ]
    for label, value in report:
        print(f"{label:<20} {value}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=2.0, help="light heartbeat interval, s")
    parser.add_argument("--commands", type=int, default=200)
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument("--measure", type=float, default=10.0, help="heartbeat window, s")
    parser.add_argument("--database-url", default="", help="default: SQLite in a temp dir")
    asyncio.run(main(parser.parse_args()))
