"""`power.reboot | shutdown | logoff` and `message` (tell the logged-in users something).

`dry_run` power commands only say what they would run: tests use it, nobody wants the test
machine rebooted."""

from __future__ import annotations

import asyncio
import math
import os
import shlex
import shutil
import sys
from pathlib import Path

import psutil

from steward.agent._executor import CommandContext
from steward.protocol import CommandResult, CommandStatus, CommandType
from steward.protocol.payloads import MessagePayload, Payload, PowerPayload

_IS_WINDOWS = sys.platform == "win32"
MESSAGE_SECONDS = 300  # how long Windows shows a message box


def logged_in_users() -> list[str]:
    return sorted({user.name for user in psutil.users() if user.name})


def power_argvs(
    command_type: CommandType, payload: PowerPayload, *, windows: bool = _IS_WINDOWS
) -> list[list[str]]:
    """The argv lists that carry out a power command (logoff: one per logged-in user)."""
    if windows:
        force = ["/f"] if payload.force else []
        if command_type is CommandType.POWER_LOGOFF:
            return [["shutdown", "/l", *force]]  # /l takes no delay
        flag = "/r" if command_type is CommandType.POWER_REBOOT else "/s"
        comment = ["/c", payload.message] if payload.message else []
        return [["shutdown", flag, "/t", str(payload.delay_s), *comment, *force]]
    if command_type is CommandType.POWER_LOGOFF:
        return [["loginctl", "terminate-user", "--", user] for user in logged_in_users()]
    flag = "-r" if command_type is CommandType.POWER_REBOOT else "-h"
    minutes = math.ceil(payload.delay_s / 60)
    when = f"+{minutes}" if minutes else "now"
    # `--`: a message such as "-c" must not become an option (it would cancel a shutdown).
    return [["shutdown", flag, "--", when, *([payload.message] if payload.message else [])]]


async def power(
    command_type: CommandType, payload: Payload, context: CommandContext
) -> CommandResult:
    assert isinstance(payload, PowerPayload)
    argvs = power_argvs(command_type, payload)
    if payload.dry_run:
        lines = "".join(f"would run: {shlex.join(argv)}\n" for argv in argvs)
        if not argvs:
            lines = "nothing to run: no user is logged in\n"
        return context.result(CommandStatus.SUCCEEDED, exit_code=0, stdout=lines)
    if not argvs:
        return context.result(CommandStatus.SUCCEEDED, error="no user is logged in")
    if command_type is CommandType.POWER_LOGOFF and not _IS_WINDOWS:
        # `shutdown` warns and waits by itself; loginctl does not: warn, wait, then log off.
        if payload.message:
            await _wall(context, payload.message)
        if payload.delay_s and not await context.sleep(payload.delay_s):
            return context.result(CommandStatus.CANCELLED, error="cancelled before logging off")
    outputs: list[str] = []
    for argv in argvs:
        try:
            outcome = await context.run(argv)
        except OSError as exc:
            return context.failed(f"cannot start {argv[0]}: {exc.strerror or exc}")
        outputs.append(outcome.stdout)
        if not outcome.ok:
            return outcome.to_result(context, error=_first_line(outcome.stderr))
    return context.result(
        CommandStatus.SUCCEEDED, exit_code=0, stdout="".join(outputs), error=shlex.join(argvs[0])
    )


async def _wall(context: CommandContext, text: str) -> bool:
    try:
        outcome = await context.run(["wall"], stdin=text.encode("utf-8"), stream=False)
    except OSError:
        return False
    return outcome.ok


def _first_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[0] if lines else ""


async def send_message(
    command_type: CommandType, payload: Payload, context: CommandContext
) -> CommandResult:
    assert isinstance(payload, MessagePayload)
    text = f"{payload.title}\n\n{payload.text}" if payload.title else payload.text
    if _IS_WINDOWS:
        argv = ["msg", "*", f"/TIME:{MESSAGE_SECONDS}", text]
        try:
            outcome = await context.run(argv)
        except OSError as exc:
            return context.failed(f"cannot start msg: {exc.strerror or exc}")
        return outcome.to_result(context)
    try:
        outcome = await context.run(["wall"], stdin=text.encode("utf-8"))
    except OSError as exc:
        return context.failed(f"cannot start wall: {exc.strerror or exc}")
    if not outcome.ok:
        return outcome.to_result(context, error=_first_line(outcome.stderr))
    shown = await _notify_desktops(context, payload.title or "Steward", payload.text)
    summary = f"sent to terminals; desktop notifications: {shown}"
    return outcome.to_result(context, summary=summary)


async def _notify_desktops(context: CommandContext, title: str, text: str) -> int:
    """Best effort: a notification on each graphical session (a user on a `:N` display)
    whose session bus is found. Returns how many were shown."""
    notify, runuser = shutil.which("notify-send"), shutil.which("runuser")
    if notify is None or runuser is None or os.name != "posix":
        return 0
    shown = 0
    for user in psutil.users():
        display = user.host if user.host.startswith(":") else ""
        try:
            import pwd

            uid = pwd.getpwnam(user.name).pw_uid
        except (KeyError, ImportError):
            continue
        bus = Path(f"/run/user/{uid}/bus")
        if not display or not await asyncio.to_thread(bus.exists):
            continue
        argv = [
            runuser, "-u", user.name, "--", "env", f"DISPLAY={display}",
            f"DBUS_SESSION_BUS_ADDRESS=unix:path={bus}", notify, "--", title, text,
        ]  # fmt: skip
        try:
            outcome = await context.run(argv, stream=False)
        except OSError:
            continue
        shown += outcome.ok
    return shown
