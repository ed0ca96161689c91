"""Runs one program of a command in a subprocess, streams and captures its output.

Each program runs in its own session / process group, so that a timeout, a cancel (or the agent
stopping) kills everything it started, not just the program. Output is captured up to
`MAX_OUTPUT_BYTES` per stream; the rest is read and dropped, so a chatty child never blocks on a
full pipe. While it runs, the captured output is decoded incrementally (a multi-byte character
is never split) and handed to an `OutputSink` in coalesced chunks.

The command types themselves (what to run) live in `steward.agent.commands`.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from steward.agent._identity import clip
from steward.protocol import (
    MAX_MESSAGE_BYTES,
    MAX_OUTPUT_BYTES,
    MAX_OUTPUT_CHUNK,
    CommandResult,
    CommandStatus,
    dump_message,
)

logger = logging.getLogger("steward.agent")

# A dispatch may say `timeout_s: Infinity`; nothing runs longer than a week.
MAX_TIMEOUT_S = 7 * 24 * 3600.0
# After the program exits, how long its background children may keep its output pipes open.
PIPE_GRACE_S = 1.0
# A result frame must fit in one message, with room for the JSON around the output.
RESULT_BUDGET_BYTES = MAX_MESSAGE_BYTES - 32 * 1024
# Live output is sent when this much has gathered, or this long after it started gathering.
OUTPUT_FLUSH_CHARS = 16 * 1024
OUTPUT_FLUSH_S = 0.15
CANCELLED_ERROR = "cancelled"
_ERROR_LENGTH = 255  # CommandResult.error

Stream = Literal["stdout", "stderr"]
# Called with (stream, character offset of `data` in that stream, data).
OutputSink = Callable[[Stream, int, str], None]
FinalStatus = Literal[
    CommandStatus.SUCCEEDED, CommandStatus.FAILED, CommandStatus.TIMED_OUT, CommandStatus.CANCELLED
]


def failed_result(command_id: str, error: str) -> CommandResult:
    return CommandResult(
        command_id=command_id, status=CommandStatus.FAILED, error=clip(error, _ERROR_LENGTH)
    )


def cancelled_result(command_id: str) -> CommandResult:
    return CommandResult(
        command_id=command_id, status=CommandStatus.CANCELLED, error=CANCELLED_ERROR
    )


@dataclass
class CommandContext:
    """What a command's programs share: its id, one deadline for all of them, where live
    output goes and the event that cancels it."""

    command_id: str
    timeout_s: float = MAX_TIMEOUT_S
    on_output: OutputSink | None = None
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    deadline: float = field(init=False)
    programs_running: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.timeout_s = min(self.timeout_s, MAX_TIMEOUT_S)
        self.deadline = time.monotonic() + self.timeout_s

    def remaining(self) -> float:
        return max(self.deadline - time.monotonic(), 0.0)

    async def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        stream: bool = True,
    ) -> Outcome:
        """Run `argv` (no shell) until it exits, the deadline passes or the command is
        cancelled. Raises OSError when the program cannot be started."""
        if self.cancel.is_set() or self.remaining() <= 0:  # a later step of a stopped command
            empty = _Capture(MAX_OUTPUT_BYTES)
            return Outcome(None, not self.cancel.is_set(), self.cancel.is_set(), empty, empty)
        self.programs_running += 1
        try:
            return await _run(self, argv, env=env, stdin=stdin, stream=stream)
        finally:
            self.programs_running -= 1

    async def sleep(self, seconds: float) -> bool:
        """Wait `seconds` (within the deadline); False when cancelled or out of time."""
        if seconds > self.remaining():
            await _within(self.cancel.wait(), self.remaining())
            return False
        return not await _within(self.cancel.wait(), seconds)

    def result(
        self,
        status: FinalStatus,
        *,
        error: str = "",
        exit_code: int | None = None,
        stdout: str = "",
        stderr: str = "",
    ) -> CommandResult:
        return fit_result(
            CommandResult(
                command_id=self.command_id,
                status=status,
                exit_code=exit_code,
                stdout=stdout[:MAX_OUTPUT_BYTES],
                stderr=stderr[:MAX_OUTPUT_BYTES],
                stdout_truncated=len(stdout) > MAX_OUTPUT_BYTES,
                stderr_truncated=len(stderr) > MAX_OUTPUT_BYTES,
                error=clip(error, _ERROR_LENGTH),
            )
        )

    def failed(self, error: str, *, stdout: str = "", stderr: str = "") -> CommandResult:
        return self.result(CommandStatus.FAILED, error=error, stdout=stdout, stderr=stderr)


class _Capture:
    """Keeps the first `limit` bytes of a stream and drops the rest (noting that it did)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.chunks: list[bytes] = []
        self.kept = 0
        self.truncated = False

    def feed(self, data: bytes) -> bytes:
        """Keep what fits; returns what was kept."""
        room = self.limit - self.kept
        if len(data) > room:
            self.truncated = True
            data = data[:room]
        if data:
            self.chunks.append(data)
            self.kept += len(data)
        return data

    def text(self) -> str:
        return b"".join(self.chunks).decode("utf-8", errors="replace")


class _LiveStream:
    """Turns the kept bytes of one stream into text chunks with character offsets."""

    def __init__(self, name: Stream, sink: OutputSink) -> None:
        self.name = name
        self.sink = sink
        self.offset = 0
        self.pending = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes, *, final: bool = False) -> None:
        self.pending += self._decoder.decode(data, final=final)
        if len(self.pending) >= OUTPUT_FLUSH_CHARS or final:
            self.flush()

    def flush(self) -> None:
        while self.pending:
            chunk = self.pending[:MAX_OUTPUT_CHUNK]
            self.pending = self.pending[MAX_OUTPUT_CHUNK:]
            try:
                self.sink(self.name, self.offset, chunk)
            except Exception:  # live output is best effort; the result carries it anyway
                logger.exception("cannot hand over live output")
            self.offset += len(chunk)


class _CommandProtocol(asyncio.SubprocessProtocol):
    """Collects a command's output as it arrives (so its pipes never fill up) and tells
    apart "the program exited" from "its output pipes closed": background children may keep
    the pipes open long after the program is gone."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sink: OutputSink | None) -> None:
        self.captures = {1: _Capture(MAX_OUTPUT_BYTES), 2: _Capture(MAX_OUTPUT_BYTES)}
        self.live: dict[int, _LiveStream] = {}
        if sink is not None:
            self.live = {1: _LiveStream("stdout", sink), 2: _LiveStream("stderr", sink)}
        self.exited: asyncio.Future[None] = loop.create_future()
        self.output_closed: asyncio.Future[None] = loop.create_future()
        self._open_pipes = {1, 2}

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        if fd in self.captures and isinstance(data, bytes):
            kept = self.captures[fd].feed(data)
            if kept and fd in self.live:
                self.live[fd].feed(kept)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._open_pipes.discard(fd)
        if not self._open_pipes and not self.output_closed.done():
            self.output_closed.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)

    def flush(self, *, final: bool = False) -> None:
        for live in self.live.values():
            if final:
                live.feed(b"", final=True)
            else:
                live.flush()


@dataclass
class Outcome:
    """How one program ended, with its captured output."""

    exit_code: int | None
    timed_out: bool
    cancelled: bool
    out: _Capture
    err: _Capture

    @property
    def stdout(self) -> str:
        return self.out.text()

    @property
    def stderr(self) -> str:
        return self.err.text()

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.cancelled

    def to_result(
        self,
        context: CommandContext,
        *,
        error: str = "",
        summary: str = "",
        succeeded: bool | None = None,
    ) -> CommandResult:
        """The command's result from this outcome: cancelled, timed out, or succeeded when
        `succeeded` says so (default: exit code 0 and no `error`) with `summary` in `error`,
        else failed with `error` (default: the exit code)."""
        status: FinalStatus
        if succeeded is None:
            succeeded = self.exit_code == 0 and not error
        if self.cancelled:
            status, error = CommandStatus.CANCELLED, CANCELLED_ERROR
        elif self.timed_out:
            status, error = CommandStatus.TIMED_OUT, f"timed out after {context.timeout_s:g} s"
        elif succeeded:
            status, error = CommandStatus.SUCCEEDED, summary
        else:
            status = CommandStatus.FAILED
            error = error or summary or f"exited with code {self.exit_code}"
        return fit_result(
            CommandResult(
                command_id=context.command_id,
                status=status,
                exit_code=None if self.timed_out or self.cancelled else self.exit_code,
                stdout=self.out.text(),
                stderr=self.err.text(),
                stdout_truncated=self.out.truncated,
                stderr_truncated=self.err.truncated,
                error=clip(error, _ERROR_LENGTH),
            )
        )


async def _run(
    context: CommandContext,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None,
    stdin: bytes | None,
    stream: bool,
) -> Outcome:
    isolation: dict[str, Any]
    if sys.platform == "win32":
        isolation = {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
    else:
        isolation = {"start_new_session": True}  # new session => new process group, no tty
    loop = asyncio.get_running_loop()
    sink = context.on_output if stream else None
    # Not asyncio.create_subprocess_exec: on Python 3.11 its Process.wait() only returns once
    # the output pipes are closed too, which a background child can delay forever.
    transport, protocol = await loop.subprocess_exec(
        lambda: _CommandProtocol(loop, sink),
        *argv,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env) if env is not None else None,
        **isolation,
    )
    flusher = asyncio.create_task(_flush_periodically(protocol)) if sink else None
    timed_out = cancelled = False
    try:
        if stdin is not None:
            _feed_stdin(transport, stdin)
        cancel: asyncio.Future[Any] = asyncio.ensure_future(context.cancel.wait())
        waited: set[asyncio.Future[Any]] = {protocol.exited, cancel}
        try:
            await asyncio.wait(
                waited,
                timeout=context.remaining(),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            cancel.cancel()
        if not protocol.exited.done():
            cancelled = context.cancel.is_set()
            timed_out = not cancelled
            await _kill_tree(transport.get_pid(), protocol.exited)
        if not await _within(protocol.output_closed, PIPE_GRACE_S):
            # The program is gone but something it started in the background still holds its
            # output. The command is over: stop the stragglers so that the pipes close.
            await _kill_tree(transport.get_pid(), protocol.exited)
            await _within(protocol.output_closed, PIPE_GRACE_S)
        protocol.flush(final=True)
        out, err = protocol.captures[1], protocol.captures[2]
        return Outcome(transport.get_returncode(), timed_out, cancelled, out, err)
    except asyncio.CancelledError:
        await _kill_tree(transport.get_pid(), protocol.exited)
        raise
    finally:
        if flusher is not None:
            flusher.cancel()
        transport.close()  # a child that left the process group may still hold the pipes


def _feed_stdin(transport: asyncio.SubprocessTransport, data: bytes) -> None:
    pipe = transport.get_pipe_transport(0)
    if pipe is None:
        return
    with contextlib.suppress(OSError, RuntimeError):  # the program may not read it at all
        pipe.write(data)  # type: ignore[attr-defined]
        pipe.write_eof()  # type: ignore[attr-defined]


async def _flush_periodically(protocol: _CommandProtocol) -> None:
    while True:
        await asyncio.sleep(OUTPUT_FLUSH_S)
        protocol.flush()


async def _within(awaitable: Awaitable[Any], timeout_s: float) -> bool:
    """Whether `awaitable` is done within `timeout_s` (a future is not cancelled otherwise)."""
    future: asyncio.Future[Any] = asyncio.ensure_future(awaitable)
    done, _pending = await asyncio.wait({future}, timeout=timeout_s)
    if not done and not isinstance(awaitable, asyncio.Future):
        future.cancel()
    return bool(done)


async def _kill_tree(pid: int, exited: asyncio.Future[None]) -> None:
    """Kill the program's process group (POSIX) or process tree (Windows); wait for the
    program to be reaped."""
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
        field_name = "stdout" if len(result.stdout) >= len(result.stderr) else "stderr"
        text: str = getattr(result, field_name)
        result = result.model_copy(
            update={field_name: text[: len(text) // 2], f"{field_name}_truncated": True}
        )
    return result
