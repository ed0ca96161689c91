"""Scenario 4: heartbeat ingest, the highest rate the server sustains per core with the flush
keeping up."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from bench.scenarios import Bench

DRAIN_LIMIT_S = 2.0  # after a step, its history points in device_metrics within this
LAG_LIMIT_S = 2.0  # oldest last_seen older than an agent's beat interval by at most this
TARGET = ">= 20,000 light heartbeats/s per core"


@dataclass
class Step:
    target: float  # heartbeats per second asked of the simulator
    sent: int
    sending_s: float
    rows: int  # history rows written for the step
    expected: int  # history rows the step must have written at least (see `_expected_rows`)
    drain_s: float  # from the end of sending until `expected` rows (inf: never, within the limit)
    cpu_s: float  # server CPU seconds, start of the step until drained
    window_s: float
    lag_s: float  # oldest last_seen age at the end of the step minus an agent's beat interval
    lagging: int  # agents whose last_seen lagged by more than LAG_LIMIT_S

    @property
    def rate(self) -> float:
        return self.sent / self.sending_s

    @property
    def per_core(self) -> float:
        return self.sent / self.cpu_s if self.cpu_s else float("inf")

    @property
    def kept_up(self) -> bool:
        return (
            self.rows >= self.expected
            and self.drain_s <= DRAIN_LIMIT_S
            and self.lag_s <= LAG_LIMIT_S
        )

    @property
    def sim_limited(self) -> bool:
        return self.rate < 0.9 * self.target


async def _quiet(bench: Bench) -> int:
    """Wait until no heartbeat is sent or written any more; the last history row id."""
    while True:
        beats, last = bench.fleet.beats, await bench.probe.last_metric_id()
        await asyncio.sleep(1.5)  # over the flush interval (1 s)
        bench.fleet.drain()
        if bench.fleet.beats == beats and await bench.probe.last_metric_id() == last:
            return last


async def _step(bench: Bench, target: float, after_id: int) -> Step:
    fleet, server, probe = bench.fleet, bench.server, bench.probe
    fleet.drain()
    beats, cpu = fleet.beats, server.cpu_seconds()
    started = time.monotonic()
    await fleet.set_rate(target)
    await asyncio.sleep(bench.args.step)
    ages = await probe.last_seen_ages()
    await fleet.set_rate(0)
    stopped = time.monotonic()
    await asyncio.sleep(0.1)  # the last sends of a tick, and their report
    fleet.drain()
    sent = fleet.beats - beats
    interval = fleet.size / max(sent / (stopped - started), 1e-9)
    lagging = sum(age - interval > LAG_LIMIT_S for age in ages)
    expected = _expected_rows(sent, fleet.size, stopped - started)
    rows = await probe.metrics_since(after_id)
    while rows < expected and time.monotonic() - stopped < DRAIN_LIMIT_S * 5:
        await asyncio.sleep(0.1)
        rows = await probe.metrics_since(after_id)
    drained = time.monotonic()
    return Step(
        target=target, sent=sent, sending_s=stopped - started, rows=rows, expected=expected,
        drain_s=drained - stopped if rows >= expected else float("inf"),
        cpu_s=server.cpu_seconds() - cpu, window_s=drained - started,
        lag_s=(ages[0] if ages else float("nan")) - interval, lagging=lagging,
    )  # fmt: skip


def _expected_rows(sent: int, agents: int, seconds: float) -> int:
    """The server keeps one history point per device per flush interval (1 s), the newest: an
    agent beating r times a second over T seconds gets about min(r, 1) * T rows. The flush runs
    1 s after the previous one ended, so a busy one stretches the period: 60 % of that, less
    the first and last interval (cut), is due, for all agents together. The lag check says
    whether the state itself kept up."""
    per_agent = sent / max(agents, 1)
    return int(agents * max(0.6 * min(per_agent, seconds) - 1.0, 0.0))


async def heartbeat_ingest(bench: Bench) -> None:
    """Ramp the total light heartbeat rate (`--rates`, `--step` s each): server CPU per step,
    heartbeats per CPU second, history rows written against heartbeats sent, and the status
    flush lag. Stops at the first step the flush does not keep up with."""
    report, fleet, args = bench.report, bench.fleet, bench.args
    report.section(
        f"Scenario 4: heartbeat ingest, {fleet.size} agents ({fleet.processes} sim processes), "
        f"{bench.installation.describe()}"
    )
    report.table()
    await fleet.set_rate(0)  # paced mode: the agents' own beats stop
    last_id = await _quiet(bench)
    steps: list[Step] = []
    try:
        for target in args.rates:
            step = await _step(bench, target, last_id)
            steps.append(step)
            verdict = "kept up" if step.kept_up else "FLUSH BEHIND"
            if step.sim_limited:
                verdict += ", simulator-limited"
            report.figure(
                f"{target:,.0f}/s asked, {step.rate:,.0f}/s sent",
                f"server {step.cpu_s / step.window_s * 100:.0f} % CPU, "
                f"{step.per_core:,.0f}/s per core; history rows {step.rows} "
                f"(>= {step.expected} due: one per agent per 1 s flush), "
                f"drained in {step.drain_s:.1f} s, last_seen lag {step.lag_s:.1f} s "
                f"({step.lagging} agents over {LAG_LIMIT_S:g} s): {verdict}",
            )
            if not step.kept_up:
                break
            last_id = await _quiet(bench)
    finally:
        await fleet.set_rate(None)
    sustained = [s for s in steps if s.kept_up]
    if not sustained:
        report.figure("highest rate with the flush keeping up", "none", TARGET)
        return
    best = max(sustained, key=lambda s: s.rate)
    report.figure(
        "highest rate with the flush keeping up",
        f"{best.rate:,.0f}/s at {best.cpu_s / best.window_s * 100:.0f} % server CPU",
    )
    report.figure("heartbeats per server CPU second there", f"{best.per_core:,.0f}/s", TARGET)
    if best is steps[-1] and best.kept_up:
        report.note("Every step kept up: the server's limit is above the highest rate asked.")
