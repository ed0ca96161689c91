"""`shell` (a command line through an interpreter) and `script` (a library script written to
a private temporary file and run with its interpreter, parameters as argv and environment)."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

from steward.agent._executor import CommandContext
from steward.protocol import CommandResult, CommandType
from steward.protocol.payloads import Payload, ScriptPayload, ShellPayload

_IS_WINDOWS = sys.platform == "win32"
_SCRIPT_SUFFIX = {"sh": ".sh", "bash": ".sh", "cmd": ".cmd", "powershell": ".ps1", "python": ".py"}


def shell_argv(payload: ShellPayload) -> list[str]:
    """The argv running `payload.command` through its interpreter (per OS when absent)."""
    interpreter = payload.interpreter or ("cmd" if _IS_WINDOWS else "sh")
    command = payload.command
    if interpreter == "sh":
        return ["/bin/sh", "-c", command]
    if interpreter == "bash":
        return [shutil.which("bash") or "/bin/bash", "-c", command]
    if interpreter == "cmd":
        return [os.environ.get("COMSPEC", "cmd.exe"), "/d", "/c", command]
    return [_powershell(), "-NoProfile", "-NonInteractive", "-Command", command]


def script_argv(interpreter: str, path: Path, args: list[str]) -> list[str]:
    """The argv running the script file at `path` with `args`, each one argument as given."""
    if interpreter == "sh":
        program = ["/bin/sh"]
    elif interpreter == "bash":
        program = [shutil.which("bash") or "/bin/bash"]
    elif interpreter == "cmd":
        program = [os.environ.get("COMSPEC", "cmd.exe"), "/d", "/c"]
    elif interpreter == "powershell":
        program = [_powershell(), "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass"]
        program.append("-File")
    else:
        program = [sys.executable or shutil.which("python3") or "python3"]
    return [*program, str(path), *args]


def _powershell() -> str:
    return "powershell.exe" if _IS_WINDOWS else (shutil.which("pwsh") or "pwsh")


async def run_shell(
    command_type: CommandType, payload: Payload, context: CommandContext
) -> CommandResult:
    assert isinstance(payload, ShellPayload)
    argv = shell_argv(payload)
    try:
        outcome = await context.run(argv)
    except OSError as exc:
        return context.failed(f"cannot start {argv[0]}: {exc.strerror or exc}")
    return outcome.to_result(context)


async def run_script(
    command_type: CommandType, payload: Payload, context: CommandContext
) -> CommandResult:
    assert isinstance(payload, ScriptPayload)
    body = payload.body.encode("utf-8")
    if hashlib.sha256(body).hexdigest() != payload.sha256:
        return context.failed("script body does not match its sha256: not running it")
    # mkdtemp makes a 0700 directory: nobody else can read or swap the script before it runs.
    directory = Path(tempfile.mkdtemp(prefix="steward-script-"))
    try:
        path = directory / f"script{_SCRIPT_SUFFIX[payload.interpreter]}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o700)
        with os.fdopen(fd, "wb") as file:
            file.write(body)
        argv = script_argv(payload.interpreter, path, list(payload.args))
        env = {**os.environ, **payload.env}
        try:
            outcome = await context.run(argv, env=env)
        except OSError as exc:
            return context.failed(f"cannot start {argv[0]}: {exc.strerror or exc}")
        return outcome.to_result(context)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
