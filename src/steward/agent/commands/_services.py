"""`service.start | stop | restart | status`: systemd when it runs the machine, else the
SysV `service` tool, on Windows the service control manager (`sc.exe`)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from steward.agent._executor import CommandContext, Outcome
from steward.protocol import CommandResult, CommandStatus, CommandType
from steward.protocol.payloads import Payload, ServicePayload

_IS_WINDOWS = sys.platform == "win32"
SYSTEMD_MARKER = Path("/run/systemd/system")
INIT_D = Path("/etc/init.d")
SC_STOP_WAIT_S = 30.0  # restart on Windows: how long to wait for the service to stop
_SC_STATE = re.compile(r"STATE\s+:\s+\d+\s+(\w+)")
_SC_MISSING = 1060  # ERROR_SERVICE_DOES_NOT_EXIST
_SC_NOT_STARTED = 1062  # ERROR_SERVICE_NOT_ACTIVE (stopping a stopped service)
# LSB exit codes of `service <name> status`.
_LSB_STATES = {
    0: "running",
    1: "dead (pid file exists)",
    2: "dead (lock file exists)",
    3: "stopped",
}


def service_manager() -> str:
    if _IS_WINDOWS:
        return "sc"
    return "systemd" if SYSTEMD_MARKER.is_dir() else "sysv"


def _verb(command_type: CommandType) -> str:
    return command_type.value.split(".", 1)[1]


async def control_service(
    command_type: CommandType, payload: Payload, context: CommandContext
) -> CommandResult:
    assert isinstance(payload, ServicePayload)
    manager = service_manager()
    try:
        if manager == "systemd":
            return await _systemd(_verb(command_type), payload.name, context)
        if manager == "sysv":
            return await _sysv(_verb(command_type), payload.name, context)
        return await _windows(_verb(command_type), payload.name, context)
    except OSError as exc:
        return context.failed(f"cannot run the service manager: {exc.strerror or exc}")


async def _systemd(verb: str, name: str, context: CommandContext) -> CommandResult:
    load = await context.run(
        ["systemctl", "show", "--property=LoadState", "--value", "--", name], stream=False
    )
    if load.stdout.strip() == "not-found":
        return context.failed(f"service not found: {name}")
    if verb != "status":
        outcome = await context.run(["systemctl", verb, "--", name])
        return outcome.to_result(context, error=_fail(outcome), summary=f"{verb} {name}: done")
    active = await context.run(["systemctl", "is-active", "--", name], stream=False)
    state = active.stdout.strip() or "unknown"
    details = await context.run(["systemctl", "status", "--no-pager", "--", name])
    return _status_result(context, name, state, details)


async def _sysv(verb: str, name: str, context: CommandContext) -> CommandResult:
    script = INIT_D / name
    if not script.is_file():
        return context.failed(f"service not found: {name}")
    outcome = await context.run(["service", name, verb])
    if verb != "status":
        return outcome.to_result(context, error=_fail(outcome), summary=f"{verb} {name}: done")
    if outcome.cancelled or outcome.timed_out:
        return outcome.to_result(context)
    state = _LSB_STATES.get(outcome.exit_code or 0, f"unknown (exit code {outcome.exit_code})")
    return _status_result(context, name, state, outcome)


async def _windows(verb: str, name: str, context: CommandContext) -> CommandResult:
    query = await context.run(["sc.exe", "query", name], stream=False)
    if query.exit_code == _SC_MISSING:
        return context.failed(f"service not found: {name}")
    if verb == "status":
        match = _SC_STATE.search(query.stdout)
        return _status_result(context, name, match.group(1).lower() if match else "unknown", query)
    if verb in ("stop", "restart"):
        stop = await context.run(["sc.exe", "stop", name])
        if not stop.ok and not (verb == "restart" and stop.exit_code == _SC_NOT_STARTED):
            return stop.to_result(context, error=_fail(stop))
        if verb == "stop":
            return stop.to_result(context, summary=f"stop {name}: done")
        while True:  # `sc stop` only asks: wait until it has stopped before starting again
            state = await context.run(["sc.exe", "query", name], stream=False)
            if "STOPPED" in state.stdout or not await context.sleep(0.5):
                break
    start = await context.run(["sc.exe", "start", name])
    return start.to_result(context, error=_fail(start), summary=f"{verb} {name}: done")


def _fail(outcome: Outcome) -> str:
    if outcome.ok:
        return ""
    lines = [line.strip() for line in (outcome.stderr or outcome.stdout).splitlines()]
    detail = next((line for line in lines if line), "")
    return f"exited with code {outcome.exit_code}" + (f": {detail}" if detail else "")


def _status_result(
    context: CommandContext, name: str, state: str, details: Outcome
) -> CommandResult:
    if details.cancelled or details.timed_out:
        return details.to_result(context)
    stdout = f"state: {state}\n{details.stdout}"
    return context.result(
        CommandStatus.SUCCEEDED,
        exit_code=details.exit_code,
        stdout=stdout,
        stderr=details.stderr,
        error=f"{name}: {state}",
    )
