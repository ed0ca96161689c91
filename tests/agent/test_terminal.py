"""The agent's terminals on a real pseudo-terminal: output, input, resize, exit, close, limits,
backpressure."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import uuid

import pytest

from steward.agent._terminal import TerminalManager
from steward.protocol import (
    AgentStreamMessage,
    TerminalClose,
    TerminalExit,
    TerminalInput,
    TerminalOpen,
    TerminalOpened,
    TerminalOutput,
    TerminalResize,
)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX pseudo-terminals")


class Recorder:
    """Collects what the manager emits; `room` (when set) makes `emit` wait, like a full queue."""

    def __init__(self) -> None:
        self.frames: list[AgentStreamMessage] = []
        self.changed = asyncio.Event()
        self.room: asyncio.Event | None = None

    async def emit(self, message: AgentStreamMessage) -> None:
        if self.room is not None:
            await self.room.wait()
        self.frames.append(message)
        self.changed.set()

    def output(self, session_id: str) -> str:
        return "".join(
            f.data
            for f in self.frames
            if isinstance(f, TerminalOutput) and f.session_id == session_id
        )

    def exit_of(self, session_id: str) -> TerminalExit | None:
        exits = [
            f for f in self.frames if isinstance(f, TerminalExit) and f.session_id == session_id
        ]
        assert len(exits) <= 1
        return exits[0] if exits else None

    async def until(self, condition: object, timeout: float = 10.0) -> None:
        async def wait() -> None:
            while not condition():  # type: ignore[operator]
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(wait(), timeout)


def _open(manager: TerminalManager, **fields: object) -> str:
    session_id = uuid.uuid4().hex
    manager.handle(TerminalOpen(session_id=session_id, shell="/bin/sh", **fields))  # type: ignore[arg-type]
    return session_id


async def test_output_input_resize_and_exit_code() -> None:
    recorder = Recorder()
    manager = TerminalManager(recorder.emit)
    sid = _open(manager, cols=100, rows=30)
    await recorder.until(lambda: any(isinstance(f, TerminalOpened) for f in recorder.frames))
    opened = recorder.frames[0]
    assert isinstance(opened, TerminalOpened) and opened.pid > 0 and opened.shell == "/bin/sh"

    manager.handle(TerminalInput(session_id=sid, data="echo term-$((40+2)) $TERM\n"))
    await recorder.until(lambda: "term-42 xterm-256color" in recorder.output(sid))
    manager.handle(TerminalInput(session_id=sid, data="stty size\n"))
    await recorder.until(lambda: "30 100" in recorder.output(sid))
    manager.handle(TerminalResize(session_id=sid, cols=132, rows=43))
    manager.handle(TerminalInput(session_id=sid, data="stty size; printf 'caf\\303\\251\\n'\n"))
    await recorder.until(
        lambda: "43 132" in recorder.output(sid) and "café" in recorder.output(sid)
    )
    manager.handle(TerminalInput(session_id=sid, data="exit 7\n"))
    await recorder.until(lambda: recorder.exit_of(sid) is not None)
    ended = recorder.exit_of(sid)
    assert ended is not None and ended.exit_code == 7 and ended.error == ""
    seqs = [f.seq for f in recorder.frames if isinstance(f, TerminalOutput)]
    assert seqs == list(range(len(seqs)))
    assert manager.session_count == 0
    await manager.aclose()


async def test_close_kills_the_shell_and_its_children() -> None:
    recorder = Recorder()
    manager = TerminalManager(recorder.emit)
    sid = _open(manager)
    await recorder.until(lambda: recorder.frames and isinstance(recorder.frames[0], TerminalOpened))
    # a foreground job and a background job, each in a process group of its own
    manager.handle(TerminalInput(session_id=sid, data="sleep 300 & echo bg=$!; sleep 301\n"))
    await recorder.until(lambda: re.search(r"bg=(\d+)", recorder.output(sid)) is not None)
    background = int(re.search(r"bg=(\d+)", recorder.output(sid)).group(1))  # type: ignore[union-attr]
    shell_pid = recorder.frames[0].pid  # type: ignore[union-attr]
    manager.handle(TerminalClose(session_id=sid))
    await recorder.until(lambda: recorder.exit_of(sid) is not None)
    ended = recorder.exit_of(sid)
    assert ended is not None and ended.error == "closed"
    for pid in (shell_pid, background):
        await _gone(pid)
    await manager.aclose()


async def _gone(pid: int) -> None:
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"process {pid} survived")


async def test_failed_open_and_the_session_limit() -> None:
    recorder = Recorder()
    manager = TerminalManager(recorder.emit, max_sessions=1)
    bad = uuid.uuid4().hex
    manager.handle(TerminalOpen(session_id=bad, shell="/no/such/shell"))
    await recorder.until(lambda: recorder.exit_of(bad) is not None)
    assert "shell not found" in recorder.exit_of(bad).error  # type: ignore[union-attr]
    if os.geteuid() != 0:
        refused = uuid.uuid4().hex
        manager.handle(TerminalOpen(session_id=refused, run_as="root"))
        await recorder.until(lambda: recorder.exit_of(refused) is not None)
        assert "root" in recorder.exit_of(refused).error  # type: ignore[union-attr]

    first = _open(manager)
    await recorder.until(lambda: any(isinstance(f, TerminalOpened) for f in recorder.frames))
    second = _open(manager)
    await recorder.until(lambda: recorder.exit_of(second) is not None)
    assert "too many" in recorder.exit_of(second).error  # type: ignore[union-attr]
    await manager.aclose()
    await recorder.until(lambda: recorder.exit_of(first) is not None)
    assert manager.session_count == 0


async def test_a_full_queue_stops_the_reading() -> None:
    """While `emit` waits, nothing more is read: the shell's writes block in the kernel."""
    recorder = Recorder()
    manager = TerminalManager(recorder.emit)
    sid = _open(manager)
    await recorder.until(lambda: any(isinstance(f, TerminalOpened) for f in recorder.frames))
    recorder.room = asyncio.Event()  # the queue is full from now on
    manager.handle(
        TerminalInput(session_id=sid, data="yes steward | head -c 2000000; echo done-$((1+1))\n")
    )
    await asyncio.sleep(0.5)
    held = len(recorder.frames)
    await asyncio.sleep(0.3)
    assert len(recorder.frames) == held  # one frame waits for room, nothing else is read
    recorder.room.set()
    await recorder.until(lambda: "done-2" in recorder.output(sid), timeout=30)
    assert len(recorder.output(sid)) > 2_000_000
    await manager.aclose()
