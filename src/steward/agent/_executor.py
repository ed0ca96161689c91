"""Runs dispatched commands in subprocesses and turns their outcome into a `CommandResult`.

Each command runs in its own session / process group, so that a timeout (or the agent stopping)
kills everything it started, not just the shell. Output is captured up to `MAX_OUTPUT_BYTES`
per stream; the rest is read and dropped, so a chatty child never blocks on a full pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from typing import Any, Literal

from steward.agent._identity import clip
from steward.protocol import (
    MAX_MESSAGE_BYTES,
    MAX_OUTPUT_BYTES,
    CommandDispatch,
    CommandResult,
    CommandStatus,
    CommandType,
    dump_message,
)

logger = logging.getLogger("steward.agent")

# A dispatch may say `timeout_s: Infinity`; nothing runs longer than a week.
MAX_TIMEOUT_S = 7 * 24 * 3600.0
# After the shell exits, how long its background children may keep its output pipes open.
PIPE_GRACE_S = 1.0
# A result frame must fit in one message, with room for the JSON around the output.
RESULT_BUDGET_BYTES = MAX_MESSAGE_BYTES - 32 * 1024
_ERROR_LENGTH = 255  # CommandResult.error
_IS_WINDOWS = sys.platform == "win32"
_FinalStatus = Literal[CommandStatus.SUCCEEDED, CommandStatus.FAILED, CommandStatus.TIMED_OUT]


def failed_result(command_id: str, error: str) -> CommandResult:
    return CommandResult(
        command_id=command_id, status=CommandStatus.FAILED, error=clip(error, _ERROR_LENGTH)
    )


def shell_argv(payload: dict[str, Any]) -> list[str]:
    """The argv for a `shell` payload `{"command": str, "interpreter": "sh"|"bash"|"cmd"|
    "powershell"}`. Raises ValueError for a payload the agent cannot run."""
    command = payload.get("command")
    if not isinstance(command, str) or not command:
        raise ValueError("payload.command must be a non-empty string")
    interpreter = payload.get("interpreter") or ("cmd" if _IS_WINDOWS else "sh")
    if interpreter == "sh":
        return ["/bin/sh", "-c", command]
    if interpreter == "bash":
        return [shutil.which("bash") or "/bin/bash", "-c", command]
    if interpreter == "cmd":
        return [os.environ.get("COMSPEC", "cmd.exe"), "/d", "/c", command]
    if interpreter == "powershell":
        program = "powershell.exe" if _IS_WINDOWS else (shutil.which("pwsh") or "pwsh")
        return [program, "-NoProfile", "-NonInteractive", "-Command", command]
    raise ValueError(f"unknown interpreter {interpreter!r} (sh, bash, cmd, powershell)")


async def run_command(dispatch: CommandDispatch) -> CommandResult:
    """Run one dispatched command to its end and describe the outcome. Never raises for a
    command that fails; cancelling it kills the command's whole process group."""
    if dispatch.command_type is not CommandType.SHELL:
        return failed_result(
            dispatch.command_id, f"unsupported command type {dispatch.command_type}"
        )
    try:
        argv = shell_argv(dispatch.payload)
    except ValueError as exc:
        return failed_result(dispatch.command_id, f"invalid payload: {exc}")
    timeout_s = min(dispatch.timeout_s, MAX_TIMEOUT_S)
    try:
        outcome = await _run(argv, timeout_s)
    except OSError as exc:
        return failed_result(dispatch.command_id, f"cannot start {argv[0]}: {exc.strerror or exc}")
    return fit_result(outcome.to_result(dispatch.command_id, timeout_s))


class _Capture:
    """Keeps the first `limit` bytes of a stream and drops the rest (noting that it did)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.chunks: list[bytes] = []
        self.kept = 0
        self.truncated = False

    def feed(self, data: bytes) -> None:
        room = self.limit - self.kept
        if len(data) > room:
            self.truncated = True
            data = data[:room]
        if data:
            self.chunks.append(data)
            self.kept += len(data)

    def text(self) -> str:
        return b"".join(self.chunks).decode("utf-8", errors="replace")


class _CommandProtocol(asyncio.SubprocessProtocol):
    """Collects a command's output as it arrives (so its pipes never fill up) and tells
    apart "the shell exited" from "its output pipes closed": background children may keep
    the pipes open long after the shell is gone."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.captures = {1: _Capture(MAX_OUTPUT_BYTES), 2: _Capture(MAX_OUTPUT_BYTES)}
        self.exited: asyncio.Future[None] = loop.create_future()
        self.output_closed: asyncio.Future[None] = loop.create_future()
        self._open_pipes = {1, 2}

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        if fd in self.captures and isinstance(data, bytes):
            self.captures[fd].feed(data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._open_pipes.discard(fd)
        if not self._open_pipes and not self.output_closed.done():
            self.output_closed.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


class _Outcome:
    def __init__(self, exit_code: int | None, timed_out: bool, out: _Capture, err: _Capture):
        self.exit_code = exit_code
        self.timed_out = timed_out
        self.out = out
        self.err = err

    def to_result(self, command_id: str, timeout_s: float) -> CommandResult:
        status: _FinalStatus
        if self.timed_out:
            status, error = CommandStatus.TIMED_OUT, f"timed out after {timeout_s:g} s"
        elif self.exit_code == 0:
            status, error = CommandStatus.SUCCEEDED, ""
        else:
            status, error = CommandStatus.FAILED, f"exited with code {self.exit_code}"
        return CommandResult(
            command_id=command_id,
            status=status,
            exit_code=None if self.timed_out else self.exit_code,
            stdout=self.out.text(),
            stderr=self.err.text(),
            stdout_truncated=self.out.truncated,
            stderr_truncated=self.err.truncated,
            error=error,
        )


async def _run(argv: Sequence[str], timeout_s: float) -> _Outcome:
    isolation: dict[str, Any]
    if sys.platform == "win32":
        isolation = {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
    else:
        isolation = {"start_new_session": True}  # new session => new process group, no tty
    loop = asyncio.get_running_loop()
    # Not asyncio.create_subprocess_exec: on Python 3.11 its Process.wait() only returns once
    # the output pipes are closed too, which a background child can delay forever.
    transport, protocol = await loop.subprocess_exec(
        lambda: _CommandProtocol(loop),
        *argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **isolation,
    )
    timed_out = False
    try:
        if not await _within(protocol.exited, timeout_s):
            timed_out = True
            await _kill_tree(transport.get_pid(), protocol.exited)
        if not await _within(protocol.output_closed, PIPE_GRACE_S):
            # The shell is gone but something it started in the background still holds its
            # output. The command is over: stop the stragglers so that the pipes close.
            await _kill_tree(transport.get_pid(), protocol.exited)
            await _within(protocol.output_closed, PIPE_GRACE_S)
        out, err = protocol.captures[1], protocol.captures[2]
        return _Outcome(transport.get_returncode(), timed_out, out, err)
    except asyncio.CancelledError:
        await _kill_tree(transport.get_pid(), protocol.exited)
        raise
    finally:
        transport.close()  # a child that left the process group may still hold the pipes


async def _within(future: asyncio.Future[None], timeout_s: float) -> bool:
    """Whether `future` is done within `timeout_s` (it is not cancelled otherwise)."""
    done, _pending = await asyncio.wait({future}, timeout=timeout_s)
    return bool(done)


async def _kill_tree(pid: int, exited: asyncio.Future[None]) -> None:
    """Kill the command's process group (POSIX) or process tree (Windows); wait for the
    shell to be reaped."""
    if sys.platform == "win32":
        with contextlib.suppress(OSError):
            killer = await asyncio.create_subprocess_exec(
                "taskkill", "/F", "/T", "/PID", str(pid),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            await killer.wait()
    else:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    await _within(exited, 10)


def fit_result(result: CommandResult) -> CommandResult:
    """Shorten the output until the serialized result fits in one frame. Output of
    `MAX_OUTPUT_BYTES` can grow up to six-fold in JSON (control characters become `\\u0001`)."""
    while len(dump_message(result).encode("utf-8")) > RESULT_BUDGET_BYTES:
        field = "stdout" if len(result.stdout) >= len(result.stderr) else "stderr"
        text: str = getattr(result, field)
        result = result.model_copy(
            update={field: text[: len(text) // 2], f"{field}_truncated": True}
        )
    return result
