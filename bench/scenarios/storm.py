"""Scenario 5: reconnect storm. SIGTERM the server with N agents connected, start it again on the
same port and database, and submit commands while the agents come back."""

from __future__ import annotations

import asyncio
import random
import time

import httpx

from bench.installation import start_server
from bench.scenarios import FINAL, NO_OP, Bench, final_status

IN_FLIGHT = 20  # concurrent API calls


async def _api_up(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=url, timeout=2) as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get("/healthz")).status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    return False


async def _submit(
    api: httpx.AsyncClient, device_id: str, limiter: asyncio.Semaphore
) -> tuple[str, float]:
    """One command; retried while the server answers 5xx or not at all (nothing was committed
    then: a lost answer after the commit would leave an extra command, never a missing one)."""
    async with limiter:
        for _ in range(100):
            try:
                response = await api.post(f"/api/v1/devices/{device_id}/commands", json=NO_OP)
            except httpx.TransportError:
                await asyncio.sleep(0.2)
                continue
            if response.status_code < 500:
                response.raise_for_status()
                return str(response.json()["id"]), time.monotonic()
            await asyncio.sleep(0.2)
    raise RuntimeError(f"could not submit a command to {device_id}")


async def _stored(api: httpx.AsyncClient, command_id: str, limiter: asyncio.Semaphore) -> str:
    async with limiter:
        return await final_status(api, command_id)


async def reconnect_storm(bench: Bench) -> None:
    """Time until all N are welcomed again (from the SIGTERM and from the new start); handshakes
    refused by admission control (503 + Retry-After) and other failed attempts; `--storm-commands`
    commands to random devices submitted as soon as the API answers: each received exactly once
    and its result stored."""
    report, fleet, args = bench.report, bench.fleet, bench.args
    report.section(f"Scenario 5: reconnect storm, {fleet.size} agents")
    report.table()
    await fleet.wait_until(lambda: fleet.welcomed >= fleet.size, 60)
    refused, failed, welcomes = fleet.refused, fleet.failed, fleet.welcomes
    killed = time.monotonic()
    bench.server.terminate()
    await asyncio.to_thread(bench.server.wait, 60)
    down_s = time.monotonic() - killed
    await fleet.wait_until(lambda: fleet.welcomed == 0, 30)
    restarted = time.monotonic()
    bench.server = start_server(bench.installation, bench.log, wait=False)
    if not await _api_up(bench.server.url, 120):
        raise RuntimeError(f"the server did not come back; see {bench.log}")
    api_s = time.monotonic() - restarted
    limiter = asyncio.Semaphore(IN_FLIGHT)
    devices = [random.choice(bench.creds)["device_id"] for _ in range(args.storm_commands)]
    submitting = asyncio.gather(*(_submit(bench.api, d, limiter) for d in devices))
    back = await fleet.wait_until(lambda: fleet.welcomed >= fleet.size, args.storm_timeout, 0.05)
    back_s = time.monotonic() - restarted
    accepted = await submitting
    command_ids = [command_id for command_id, _at in accepted]
    submitted_s = max(at for _id, at in accepted) - restarted if accepted else 0.0
    received = await fleet.wait_until(
        lambda: all(c in fleet.receipts for c in command_ids), args.storm_timeout
    )
    statuses: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        statuses = list(
            await asyncio.gather(*(_stored(bench.api, c, limiter) for c in command_ids))
        )
        if all(s in FINAL for s in statuses):
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(1)  # a late duplicate would show up here
    fleet.drain()
    lost = [c for c in command_ids if c not in fleet.receipts]
    twice = [c for c in command_ids if fleet.deliveries[c] > 1]
    succeeded = sum(s == "succeeded" for s in statuses)
    report.figure("server stopped (SIGTERM) in", f"{down_s:.1f} s")
    report.figure("API answering after the start", f"{api_s:.1f} s")
    report.figure(
        "all agents welcomed again, from the start",
        f"{back_s:.1f} s" if back else f"only {fleet.welcomed} after {back_s:.0f} s",
        "10,000 within 60 s",
    )
    report.figure("... from the SIGTERM", f"{back_s + restarted - killed:.1f} s")
    report.figure("handshakes refused (503 + Retry-After)", str(fleet.refused - refused))
    report.figure("other failed attempts (server down, ...)", str(fleet.failed - failed))
    report.figure("sessions opened", str(fleet.welcomes - welcomes))
    report.figure(
        f"{len(command_ids)} commands submitted meanwhile",
        f"all accepted {submitted_s:.1f} s after the start",
    )
    report.figure(
        "received exactly once",
        f"{len(command_ids) - len(lost) - len(twice)} ({len(lost)} never, {len(twice)} twice+)"
        + ("" if received else ", timed out"),
        "all, nothing lost",
    )
    report.figure("results stored (succeeded)", f"{succeeded} of {len(command_ids)}", "all")
    if twice:
        report.note(f"received more than once: {', '.join(twice[:10])}")
