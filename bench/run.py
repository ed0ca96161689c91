"""Steward benchmark, scenarios 1-5 of issue 6, against a real `steward serve`.

    .venv/bin/python -m bench.run --agents 1000
    .venv/bin/python -m bench.run --agents 20000 --database postgres --redis --workers 2

1. connect N agents: time until all are welcomed (and online per the API), server RSS growth per
   connected agent, server CPU at steady state (30 s light heartbeats);
2. command round trip with N connected: commit -> receipt and API submission -> receipt and ->
   result, p50/p99, beside a bare `websockets` echo round trip measured in the same run (the
   floor) and HTTP short polling every 2 s (the classic design);
3. bulk no-op job to all N: time until every agent has received its command and until every
   result is stored;
4. heartbeat ingest: a ramp of total heartbeat rates; the highest one the server sustains with
   the flush keeping up, and heartbeats per server CPU second;
5. reconnect storm: SIGTERM the server, start it again; time until all N are back, commands
   submitted meanwhile each received exactly once and stored.

Scenario 1 always runs (it connects the fleet). Each figure is printed beside its target; the
lines also go to bench/results/<date>.md (or `--output`; nothing with `--no-save`).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from bench.installation import Installation, Probe, log_in, populate, start_server, tenant_client
from bench.report import Report, machine
from bench.scenarios import Args, Bench
from bench.scenarios.bulk import bulk_job
from bench.scenarios.connect import connect_all
from bench.scenarios.ingest import heartbeat_ingest
from bench.scenarios.round_trip import round_trips
from bench.scenarios.storm import reconnect_storm
from bench.simulator import Fleet

SCENARIOS: dict[int, Callable[[Bench], Awaitable[None]]] = {
    2: round_trips,
    3: bulk_job,
    4: heartbeat_ingest,
    5: reconnect_storm,
}


async def main(args: Args) -> Report:
    report = Report()
    data_dir = Path(tempfile.mkdtemp(prefix="steward-bench-"))
    installation = Installation(data_dir, args.database, args.workers, args.redis)
    await installation.create()
    report.lines.append(f"# Steward benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n")
    report.lines.append(f"Machine: {machine()}\n\nAgents: {args.agents}; {installation.describe()}")
    print(f"Machine: {machine()}\n{installation.describe()}")
    try:
        await run(report, installation, args)
    finally:
        await installation.drop()
    if args.keep:
        print(f"kept {data_dir} (server.log)")
    else:
        shutil.rmtree(data_dir, ignore_errors=True)
    return report


async def run(report: Report, installation: Installation, args: Args) -> None:
    started = time.monotonic()
    pollers = args.pollers if 2 in args.scenarios and args.poll_commands else 0
    creds, poller_creds = await populate(installation, args.agents, pollers)
    print(f"enrolled {len(creds) + pollers} devices in {time.monotonic() - started:.1f} s")
    log = installation.data_dir / "server.log"
    server = start_server(installation, log)
    fleet = Fleet(creds, server.ws_url, processes=args.sim_processes)
    bench: Bench | None = None
    try:
        async with tenant_client(server) as api:
            await log_in(api)
            bench = Bench(
                args, report, installation, server, fleet, api, creds, poller_creds,
                Probe(installation), log,
            )  # fmt: skip
            await connect_all(bench)
            for number in sorted(set(args.scenarios) - {1}):
                await SCENARIOS[number](bench)
    except BaseException:
        print(f"server log: {log}")
        shutil.copy(log, Path(tempfile.gettempdir()) / "steward-bench-server.log")
        raise
    finally:
        try:
            fleet.stop()
        finally:
            (bench.server if bench else server).stop()  # no server left behind


def parse() -> Args:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--agents", type=int, default=1000)
    add(
        "--scenarios",
        type=lambda s: [int(n) for n in s.split(",")],
        default=[1, 2, 3, 4, 5],
        help="comma-separated, e.g. 1,4 (default: all)",
    )
    add("--commands", type=int, default=200, help="scenario 2 sample size")
    add("--pollers", type=int, default=200, help="scenario 2: HTTP short-poll devices")
    add("--poll-commands", type=int, default=100, help="scenario 2: commands to pollers (0: off)")
    add("--settle", type=float, default=5.0, help="s after all are online")
    add("--steady", type=float, default=10.0, help="CPU window, s")
    add(
        "--rates",
        type=lambda s: [float(n) for n in s.split(",")],
        default=[5000, 10000, 20000, 40000],
        help="scenario 4: heartbeats/s in all, per step",
    )
    add("--step", type=float, default=8.0, help="scenario 4: s per step")
    add("--storm-commands", type=int, default=200, help="scenario 5: commands during the storm")
    add(
        "--database",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="postgres: a new database on 127.0.0.1:5432 (user postgres), dropped at the end",
    )
    add("--redis", action="store_true", help="Redis bus (redis://127.0.0.1:6379/0)")
    add("--workers", type=int, default=1, help="server worker processes (>1: postgres, redis)")
    add("--sim-processes", type=int, default=1, help="at least this many simulator processes")
    add("--connect-timeout", type=float, default=600.0)
    add("--job-timeout", type=float, default=300.0)
    add("--storm-timeout", type=float, default=300.0)
    add("--output", type=Path, default=None, help="results file (default bench/results/<date>.md)")
    add("--no-save", action="store_true", help="print only (trial runs)")
    add("--keep", action="store_true", help="keep the temp dir (server.log, SQLite file)")
    return parser.parse_args(namespace=Args())


if __name__ == "__main__":
    arguments = parse()
    finished = asyncio.run(main(arguments))
    if not arguments.no_save:
        print(f"\nwritten to {finished.save(arguments.output)}")
