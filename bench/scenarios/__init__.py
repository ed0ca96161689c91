"""The benchmark's scenarios (issue 6), each a coroutine taking the shared `Bench`."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.installation import Installation, Probe, Server
from bench.report import Report
from bench.simulator import Credentials, Fleet

NO_OP = {"type": "shell", "payload": {"command": "true"}}
FINAL = {"succeeded", "failed", "timed_out", "cancelled", "expired", "denied"}


class Args(argparse.Namespace):
    agents: int
    scenarios: list[int]
    commands: int
    pollers: int
    poll_commands: int
    settle: float
    steady: float
    rates: list[float]
    step: float
    storm_commands: int
    database: str
    redis: bool
    workers: int
    sim_processes: int
    connect_timeout: float
    job_timeout: float
    storm_timeout: float
    output: Path | None
    no_save: bool
    keep: bool


@dataclass
class Bench:
    """Everything a scenario works with. `server` is replaced when scenario 5 restarts it."""

    args: Args
    report: Report
    installation: Installation
    server: Server
    fleet: Fleet
    api: httpx.AsyncClient
    creds: list[Credentials]  # the fleet's agents
    pollers: list[Credentials]  # devices left for the short-poll comparison
    probe: Probe
    log: Path


async def final_status(api: httpx.AsyncClient, command_id: str) -> str:
    response = await api.get(f"/api/v1/commands/{command_id}")
    response.raise_for_status()
    return str(response.json()["status"])
