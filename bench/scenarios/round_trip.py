"""Scenario 2: command round trip with N connected, beside the floor (a bare `websockets` echo
round trip measured in the same run) and the classic design (HTTP short polling every 2 s)."""

from __future__ import annotations

import asyncio
import random
import statistics
import time

from bench.floor import EchoServer
from bench.report import ms, p50_p99, percentile
from bench.scenarios import FINAL, NO_OP, Bench, final_status
from bench.scenarios.short_poll import short_poll

COMMITTED_AT = "X-Steward-Committed-At"  # set by the server with STEWARD_TIMING_HEADERS=1


async def round_trips(bench: Bench) -> None:
    """`--commands` sequential no-op commands to random devices by the single-command API:
    commit -> receipt (the server's commit timestamp against the agent's wall clock), API
    submission -> receipt, API submission -> result stored (polling the command every 2 ms).

    The floor is an echo round trip taken just before each command, in the same conditions
    (processes idle since the last command, as the server and the agent are when a command
    comes). Back-to-back echoes, where no process falls idle, are printed beside it: waking an
    idle process on this VM costs more than the whole busy round trip."""
    report, fleet, api, args = bench.report, bench.fleet, bench.api, bench.args
    report.section(f"Scenario 2: command round trip, {fleet.size} connected")
    report.table()
    commit_receipt: list[float] = []
    api_receipt: list[float] = []
    api_result: list[float] = []
    floor: list[float] = []
    async with EchoServer() as echo:
        busy = await echo.round_trips(args.commands)
        for _ in range(args.commands):
            device_id = random.choice(bench.creds)["device_id"]
            floor.append(await echo.round_trip())
            submitted = time.monotonic()
            response = await api.post(f"/api/v1/devices/{device_id}/commands", json=NO_OP)
            response.raise_for_status()
            command_id = response.json()["id"]
            if not await fleet.wait_until(lambda c=command_id: c in fleet.receipts, 30, 0.0005):
                raise RuntimeError(f"command {command_id} never reached its agent")
            api_receipt.append(fleet.receipts[command_id] - submitted)
            committed_at = response.headers.get(COMMITTED_AT)
            if committed_at is not None:
                commit_receipt.append(fleet.receipts_wall[command_id] - float(committed_at))
            while await final_status(api, command_id) not in FINAL:
                if time.monotonic() - submitted > 30:
                    raise RuntimeError(f"command {command_id}: no result stored within 30 s")
                await asyncio.sleep(0.002)
            api_result.append(time.monotonic() - submitted)
    report.figure("bare websockets echo, back to back", p50_p99(busy))
    floor_p50 = statistics.median(floor)
    report.figure("bare websockets echo before each command p50 (the floor)", ms(floor_p50))
    report.figure("bare websockets echo before each command p99", ms(percentile(floor, 0.99)))
    if commit_receipt:
        p50 = percentile(commit_receipt, 0.5)
        report.figure(
            "commit -> receipt p50", f"{ms(p50)} ({p50 / floor_p50:.1f}x floor)", "<= 2x floor"
        )
        report.figure("commit -> receipt p99", ms(percentile(commit_receipt, 0.99)))
    else:
        report.figure("commit -> receipt", f"n/a (no {COMMITTED_AT} header)", "<= 2x floor")
    receipt_p50 = percentile(api_receipt, 0.5)
    report.figure(
        "API submission -> receipt p50", f"{ms(receipt_p50)} ({receipt_p50 / floor_p50:.1f}x floor)"
    )
    report.figure(
        "API submission -> receipt p99",
        ms(percentile(api_receipt, 0.99)),
        "<= 20 ms with 10,000 connected",
    )
    report.figure("API submission -> result stored", p50_p99(api_result))
    if bench.pollers and args.poll_commands:
        await short_poll(bench)
