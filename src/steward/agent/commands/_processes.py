"""`process.list` and `process.kill`, through psutil (no subprocess)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

import psutil

from steward.agent._executor import CommandContext
from steward.protocol import CommandResult, CommandStatus, CommandType
from steward.protocol.payloads import Payload, ProcessKillPayload, ProcessListPayload

CPU_SAMPLE_S = 0.5  # cpu% is measured over this long
TERMINATE_GRACE_S = 3.0  # after SIGTERM, how long before SIGKILL
_ATTRS = ["pid", "username", "cpu_percent", "memory_info", "name", "cmdline"]


def process_table(name_filter: str = "", sample_s: float = CPU_SAMPLE_S) -> str:
    """A text table of the processes whose name contains `name_filter` (any case)."""
    needle = name_filter.lower()
    processes = [
        process
        for process in psutil.process_iter(["name"])
        if needle in (process.info.get("name") or "").lower()
    ]
    for process in processes:  # the first call starts the cpu% measurement
        with contextlib.suppress(psutil.Error):
            process.cpu_percent(None)
    time.sleep(sample_s)
    rows: list[tuple[int, str, float, int, str, str]] = []
    for process in processes:
        try:
            with process.oneshot():
                info = process.as_dict(_ATTRS, ad_value=None)
        except psutil.Error:
            continue
        memory = info["memory_info"].rss if info["memory_info"] is not None else 0
        command = " ".join(info["cmdline"] or [])
        rows.append(
            (
                info["pid"],
                info["username"] or "?",
                info["cpu_percent"] or 0.0,
                memory,
                info["name"] or "?",
                command,
            )
        )
    rows.sort(key=lambda row: row[0])
    lines = [f"{'PID':>7}  {'USER':<16} {'CPU%':>6} {'MEMORY':>9}  {'NAME':<24} COMMAND"]
    for pid, user, cpu, memory, name, command in rows:
        lines.append(
            f"{pid:>7}  {user[:16]:<16} {cpu:>6.1f} {_size(memory):>9}  {name[:24]:<24} {command}"
        )
    return "\n".join(lines) + "\n"


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(count)


async def list_processes(
    command_type: CommandType, payload: Payload, context: CommandContext
) -> CommandResult:
    assert isinstance(payload, ProcessListPayload)
    table = await asyncio.to_thread(process_table, payload.filter)
    return context.result(CommandStatus.SUCCEEDED, exit_code=0, stdout=table)


class KillRefused(Exception):
    pass


def protected_pids() -> set[int]:
    """pid 1, the agent and its ancestors: killing them would take the agent down."""
    me = psutil.Process()
    return {1, os.getpid(), *(parent.pid for parent in me.parents())}


def find_targets(payload: ProcessKillPayload) -> list[psutil.Process]:
    protected = protected_pids()
    if payload.pid is not None:
        if payload.pid in protected:
            raise KillRefused(f"refusing to kill pid {payload.pid}: it is init or the agent")
        try:
            return [psutil.Process(payload.pid)]
        except psutil.NoSuchProcess:
            raise KillRefused(f"no such process: pid {payload.pid}") from None
    found = [
        process
        for process in psutil.process_iter(["name"])
        if process.info.get("name") == payload.name
    ]
    if not found:
        raise KillRefused(f"no process named {payload.name}")
    targets = [process for process in found if process.pid not in protected]
    if not targets:
        raise KillRefused(f"refusing to kill {payload.name}: it is init or the agent")
    return targets


def kill(payload: ProcessKillPayload) -> list[str]:
    """Kill the targets (their children first with `tree`); what was killed, as lines."""
    protected = protected_pids()
    victims: list[psutil.Process] = []
    for target in find_targets(payload):
        if payload.tree:
            try:
                children = target.children(recursive=True)
            except psutil.NoSuchProcess:
                children = []
            # Deepest first: a parent that outlives its children cannot restart them.
            victims.extend(reversed([c for c in children if c.pid not in protected]))
        victims.append(target)
    described = {process.pid: _describe(process) for process in victims}
    signal_all(victims, force=payload.force)
    return [f"killed {described[process.pid]}" for process in victims]


def signal_all(processes: list[psutil.Process], *, force: bool) -> None:
    for process in processes:
        try:
            if force:
                process.kill()
            else:
                process.terminate()
        except psutil.NoSuchProcess:
            continue
    if force:
        psutil.wait_procs(processes, timeout=TERMINATE_GRACE_S)
        return
    _gone, alive = psutil.wait_procs(processes, timeout=TERMINATE_GRACE_S)
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(alive, timeout=TERMINATE_GRACE_S)


def _describe(process: psutil.Process) -> str:
    try:
        return f"{process.pid} ({process.name()})"
    except psutil.Error:
        return str(process.pid)


async def kill_processes(
    command_type: CommandType, payload: Payload, context: CommandContext
) -> CommandResult:
    assert isinstance(payload, ProcessKillPayload)
    try:
        lines = await asyncio.to_thread(kill, payload)
    except KillRefused as exc:
        return context.failed(str(exc))
    except psutil.AccessDenied as exc:
        return context.failed(f"not allowed to kill pid {exc.pid}")
    stdout = "".join(f"{line}\n" for line in lines)
    summary = lines[-1] if len(lines) == 1 else f"killed {len(lines)} processes"
    return context.result(CommandStatus.SUCCEEDED, exit_code=0, stdout=stdout, error=summary)
