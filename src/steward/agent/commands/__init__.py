"""The command types the agent runs: one handler per `CommandType`, each building argv lists
(never a shell string, except for `shell` itself) from a payload validated by
`steward.protocol.payloads.parse_payload`.

    result = await run_command(dispatch, on_output=sink, cancel=event)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from pydantic import ValidationError

from steward.agent._executor import (
    CommandContext,
    OutputSink,
    cancelled_result,
    failed_result,
    fit_result,
)
from steward.agent.commands import _locale, _packages, _power, _processes, _services, _shell
from steward.protocol import CommandDispatch, CommandResult, CommandType
from steward.protocol.payloads import Payload, parse_payload

logger = logging.getLogger("steward.agent")

Handler = Callable[[CommandType, Payload, CommandContext], Awaitable[CommandResult]]

HANDLERS: dict[CommandType, Handler] = {
    CommandType.SHELL: _shell.run_shell,
    CommandType.SCRIPT: _shell.run_script,
    CommandType.PACKAGE_INSTALL: _packages.change_packages,
    CommandType.PACKAGE_UNINSTALL: _packages.change_packages,
    CommandType.PACKAGE_UPGRADE: _packages.change_packages,
    CommandType.PACKAGE_LIST: _packages.list_packages,
    CommandType.POWER_REBOOT: _power.power,
    CommandType.POWER_SHUTDOWN: _power.power,
    CommandType.POWER_LOGOFF: _power.power,
    CommandType.MESSAGE: _power.send_message,
    CommandType.LOCALE_SET: _locale.set_locale,
    CommandType.SERVICE_START: _services.control_service,
    CommandType.SERVICE_STOP: _services.control_service,
    CommandType.SERVICE_RESTART: _services.control_service,
    CommandType.SERVICE_STATUS: _services.control_service,
    CommandType.PROCESS_LIST: _processes.list_processes,
    CommandType.PROCESS_KILL: _processes.kill_processes,
}


async def run_command(
    dispatch: CommandDispatch,
    *,
    on_output: OutputSink | None = None,
    cancel: asyncio.Event | None = None,
) -> CommandResult:
    """Run one dispatched command to its end and describe the outcome. Never raises for a
    command that fails. Setting `cancel` stops it (its process tree is killed; the result says
    `cancelled`); cancelling the task kills the process tree too and re-raises."""
    command_id = dispatch.command_id
    try:
        command_type = CommandType(dispatch.command_type)
    except ValueError:
        return failed_result(command_id, f"unsupported command type {dispatch.command_type}")
    handler = HANDLERS.get(command_type)
    if handler is None:
        return failed_result(command_id, f"unsupported command type {command_type}")
    try:
        payload = parse_payload(command_type, dispatch.payload)
    except ValidationError as exc:
        return failed_result(command_id, f"invalid payload: {_describe(exc)}")
    except ValueError as exc:
        return failed_result(command_id, f"invalid payload: {exc}")
    context = CommandContext(
        command_id, dispatch.timeout_s, on_output, cancel if cancel is not None else asyncio.Event()
    )
    if context.cancel.is_set():
        return cancelled_result(command_id)
    work = asyncio.ensure_future(handler(command_type, payload, context))
    stop = asyncio.ensure_future(context.cancel.wait())
    try:
        # Handlers that run programs react to `cancel` themselves (and keep the output so
        # far); this also stops the ones that do not (psutil work, waits).
        await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work
        raise
    finally:
        stop.cancel()
    if not work.done() and context.programs_running:
        await asyncio.wait({work}, timeout=2)  # a program being killed reports cancelled
    if not work.done():
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await work
        return cancelled_result(command_id)
    return fit_result(work.result())


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in error.get("loc", ()))
        message = str(error.get("msg", "invalid"))
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts) or "invalid"


__all__ = ["HANDLERS", "CommandContext", "OutputSink", "run_command"]
