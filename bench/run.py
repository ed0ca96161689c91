"""Steward benchmark, scenarios 1-3 of issue 6, against a real `steward serve` process.

    .venv/bin/python -m bench.run --agents 1000

1. connect N agents: time until all are welcomed (and online per the API), server RSS growth per
   connected agent, server CPU at steady state (30 s light heartbeats);
2. command round trip with N connected: API submission -> agent receipt, p50/p99, beside a bare
   `websockets` echo round trip measured in the same run (the floor);
3. bulk no-op job to all N: time until every agent has received its command and until every
   result is stored.

Each figure is printed beside its target; the lines also go to bench/results/<date>.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psutil

from bench.floor import echo_round_trips
from bench.installation import log_in, populate, server_env, start_server, tenant_client
from bench.simulator import Fleet

RESULTS = Path(__file__).resolve().parent / "results"
NO_OP = {"type": "shell", "payload": {"command": "true"}}
FINAL = {"succeeded", "failed", "timed_out", "cancelled", "expired", "denied"}


class Report:
    """Figures printed as they come, beside their targets, and kept for the results file."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def section(self, title: str) -> None:
        self.lines.append(f"\n## {title}\n")
        print(f"\n{title}", flush=True)

    def figure(self, label: str, value: str, target: str = "") -> None:
        self.lines.append(f"| {label} | {value} | {target} |")
        print(f"  {label:<44} {value:<36} {'target: ' + target if target else ''}", flush=True)

    def table(self) -> None:
        self.lines.append("| figure | measured | target |\n|---|---|---|")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def machine() -> str:
    memory = psutil.virtual_memory().total / 2**30
    return (
        f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"{memory:.1f} GiB RAM, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


async def online_count(api: httpx.AsyncClient) -> int:
    response = await api.get("/api/v1/devices", params={"online": "true", "limit": 1})
    response.raise_for_status()
    return int(response.headers["X-Total-Count"])


async def connect_all(
    report: Report, fleet: Fleet, api: httpx.AsyncClient, server: psutil.Process, args: Args
) -> None:
    report.section(f"Scenario 1: connect {fleet.size} agents ({fleet.processes} sim processes)")
    report.table()
    rss_before = server.memory_info().rss
    started = time.monotonic()
    fleet.start()
    if not await fleet.wait_until(lambda: fleet.welcomed >= fleet.size, args.connect_timeout):
        raise RuntimeError(f"only {fleet.welcomed} of {fleet.size} agents connected")
    welcomed_s = time.monotonic() - started
    while await online_count(api) < fleet.size:
        await asyncio.sleep(0.1)
    online_s = time.monotonic() - started
    await asyncio.sleep(args.settle)
    rss_after = server.memory_info().rss
    cpu_before, window_started = server.cpu_times(), time.monotonic()
    await asyncio.sleep(args.steady)
    cpu_after, window = server.cpu_times(), time.monotonic() - window_started
    busy = cpu_after.user + cpu_after.system - cpu_before.user - cpu_before.system
    fleet.drain()
    per_agent = (rss_after - rss_before) / fleet.size / 1024
    report.figure("time until all welcomed", f"{welcomed_s:.1f} s")
    report.figure("time until all online (API)", f"{online_s:.1f} s")
    report.figure("handshakes refused and retried", str(fleet.refusals))
    report.figure("server RSS", f"{rss_after / 2**20:.0f} MiB")
    report.figure("server RSS growth per agent", f"{per_agent:.1f} KiB", "<= 50 KiB")
    report.figure(
        f"server CPU, {args.steady:.0f} s steady state (30 s beats)",
        f"{busy / window * 100:.1f} % of one core",
        "<= 50 %",
    )


async def round_trips(
    report: Report, fleet: Fleet, api: httpx.AsyncClient, creds: list[dict[str, str]], args: Args
) -> None:
    report.section(f"Scenario 2: command round trip, {fleet.size} connected")
    report.table()
    floor = await echo_round_trips(args.commands)
    receipt: list[float] = []
    for _ in range(args.commands):
        device_id = random.choice(creds)["device_id"]
        submitted = time.monotonic()
        response = await api.post(f"/api/v1/devices/{device_id}/commands", json=NO_OP)
        response.raise_for_status()
        command_id = response.json()["id"]
        if not await fleet.wait_until(lambda c=command_id: c in fleet.receipts, 30, 0.0005):
            raise RuntimeError(f"command {command_id} never reached its agent")
        receipt.append(fleet.receipts[command_id] - submitted)
    floor_p50, receipt_p50 = statistics.median(floor), statistics.median(receipt)
    report.figure("bare websockets echo p50", ms(floor_p50))
    report.figure("bare websockets echo p99", ms(percentile(floor, 0.99)))
    report.figure(
        "API submission -> receipt p50",
        f"{ms(receipt_p50)} ({receipt_p50 / floor_p50:.1f}x floor)",
        "commit -> receipt <= 2x floor",
    )
    report.figure(
        "API submission -> receipt p99",
        ms(percentile(receipt, 0.99)),
        "<= 20 ms with 10,000 connected",
    )


async def bulk_job(report: Report, fleet: Fleet, api: httpx.AsyncClient, args: Args) -> None:
    report.section(f"Scenario 3: bulk no-op job to all {fleet.size}")
    report.table()
    received_before = len(fleet.receipts)
    started = time.monotonic()
    response = await api.post("/api/v1/jobs", json=NO_OP | {"target": {"all": True}})
    response.raise_for_status()
    job = response.json()
    submitted_s = time.monotonic() - started
    total = int(job["total"])
    expected = received_before + total
    if not await fleet.wait_until(lambda: len(fleet.receipts) >= expected, args.job_timeout):
        raise RuntimeError(f"{expected - len(fleet.receipts)} commands never reached an agent")
    received_s = time.monotonic() - started
    while True:
        detail = (await api.get(f"/api/v1/jobs/{job['id']}")).json()
        final = sum(n for status, n in detail["counts"].items() if status in FINAL)
        if final >= total:
            break
        if time.monotonic() - started > args.job_timeout:
            raise RuntimeError(f"job counts after {args.job_timeout} s: {detail['counts']}")
        await asyncio.sleep(0.1)
    stored_s = time.monotonic() - started
    report.figure("commands in the job", str(total))
    report.figure("API call answered", f"{submitted_s:.2f} s")
    report.figure("all received by agents", f"{received_s:.2f} s")
    report.figure("all results stored", f"{stored_s:.2f} s", "<= 5 s for 10,000 agents")
    report.figure("job status", f"{detail['status']} {detail['counts']}")


async def main(args: Args) -> Report:
    report = Report()
    report.lines.append(f"# Steward benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n")
    report.lines.append(f"Machine: {machine()}\n\nAgents: {args.agents}")
    print(f"Machine: {machine()}")
    data_dir = Path(tempfile.mkdtemp(prefix="steward-bench-"))
    env = server_env(data_dir)
    started = time.monotonic()
    creds = await populate(env, args.agents)
    print(f"enrolled {args.agents} devices in {time.monotonic() - started:.1f} s ({data_dir})")
    server = start_server(env, data_dir / "server.log")
    fleet = Fleet(creds, server.ws_url)
    try:
        async with tenant_client(server) as api:
            await log_in(api)
            process = psutil.Process(server.process.pid)
            await connect_all(report, fleet, api, process, args)
            await round_trips(report, fleet, api, creds, args)
            await bulk_job(report, fleet, api, args)
    finally:
        try:
            fleet.stop()
        finally:
            server.stop()  # even when the fleet fails to stop: no server left behind
    return report


def save(report: Report) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{datetime.now(UTC):%Y-%m-%d}.md"
    with open(path, "a") as out:
        out.write("\n".join(report.lines) + "\n\n")
    return path


class Args(argparse.Namespace):
    agents: int
    commands: int
    settle: float
    steady: float
    connect_timeout: float
    job_timeout: float


def parse() -> Args:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--commands", type=int, default=200, help="scenario 2 sample size")
    parser.add_argument("--settle", type=float, default=5.0, help="s after all are online")
    parser.add_argument("--steady", type=float, default=10.0, help="CPU window, s")
    parser.add_argument("--connect-timeout", type=float, default=600.0)
    parser.add_argument("--job-timeout", type=float, default=300.0)
    return parser.parse_args(namespace=Args())


if __name__ == "__main__":
    finished = asyncio.run(main(parse()))
    print(f"\nwritten to {save(finished)}")
