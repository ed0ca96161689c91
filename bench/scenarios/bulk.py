"""Scenario 3: a bulk no-op job to all N agents."""

from __future__ import annotations

import asyncio
import time

from bench.scenarios import FINAL, NO_OP, Bench


async def bulk_job(bench: Bench) -> None:
    """Time until the call is answered, until every agent has received its command, and until
    every result is stored (polling `GET /api/v1/jobs/{id}` every 100 ms)."""
    report, fleet, api, args = bench.report, bench.fleet, bench.api, bench.args
    report.section(f"Scenario 3: bulk no-op job to all {fleet.size}")
    report.table()
    fleet.drain()
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
