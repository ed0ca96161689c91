"""Scenario 1: connect N agents."""

from __future__ import annotations

import asyncio
import time

import httpx

from bench.scenarios import Bench


async def online_count(api: httpx.AsyncClient) -> int:
    response = await api.get("/api/v1/devices", params={"online": "true", "limit": 1})
    response.raise_for_status()
    return int(response.headers["X-Total-Count"])


async def connect_all(bench: Bench) -> None:
    """Time until all are welcomed (and online per the API), server RSS growth per connected
    agent, server CPU at steady state: 30 s light heartbeats, then 2 s (as if every device
    were watched)."""
    report, fleet, server, args = bench.report, bench.fleet, bench.server, bench.args
    report.section(f"Scenario 1: connect {fleet.size} agents ({fleet.processes} sim processes)")
    report.table()
    rss_before = server.rss()
    started = time.monotonic()
    fleet.start()
    if not await fleet.wait_until(lambda: fleet.welcomed >= fleet.size, args.connect_timeout):
        raise RuntimeError(f"only {fleet.welcomed} of {fleet.size} agents connected")
    welcomed_s = time.monotonic() - started
    while await online_count(bench.api) < fleet.size:
        await asyncio.sleep(0.1)
    online_s = time.monotonic() - started
    await asyncio.sleep(args.settle)
    rss_after = server.rss()
    cpu_before, window_started = server.cpu_seconds(), time.monotonic()
    await asyncio.sleep(args.steady)
    busy, window = server.cpu_seconds() - cpu_before, time.monotonic() - window_started
    # Every agent watched at once: heartbeats every 2 s (the simulator paces them).
    await fleet.set_rate(fleet.size / 2)
    await asyncio.sleep(2.0)
    cpu_before, window_started = server.cpu_seconds(), time.monotonic()
    await asyncio.sleep(args.steady)
    busy_2s, window_2s = server.cpu_seconds() - cpu_before, time.monotonic() - window_started
    await fleet.set_rate(None)
    fleet.drain()
    per_agent = (rss_after - rss_before) / fleet.size / 1024
    workers = bench.installation.workers
    report.figure("time until all welcomed", f"{welcomed_s:.1f} s")
    report.figure("time until all online (API)", f"{online_s:.1f} s")
    report.figure("handshakes refused (429/503), retried", str(fleet.refused))
    report.figure("connections failed otherwise, retried", str(fleet.failed))
    report.figure("server RSS", f"{rss_after / 2**20:.0f} MiB ({workers} worker(s))")
    report.figure("server RSS growth per agent", f"{per_agent:.1f} KiB", "<= 50 KiB")
    report.figure(
        f"server CPU, {args.steady:.0f} s steady state (30 s beats)",
        f"{busy / window * 100:.1f} % of one core",
        "<= 50 %",
    )
    report.figure(
        f"server CPU, {args.steady:.0f} s steady state (2 s beats: {fleet.size // 2:,}/s)",
        f"{busy_2s / window_2s * 100:.1f} % of one core",
    )
