"""Running terminal sessions on this process.

A `LiveTerminal` joins the owner's browser socket, the agent (through the gateway's relay), the
recording and the watchers. Whatever ends a session (the shell exits, the owner leaves, a
timeout, an administrator, a flood, a recording failure, the agent going away) asks it to stop
once; it then closes the shell, closes the recording, writes the row and audits `terminal.close`
with the recording's SHA-256, and tells the browsers why.

Browsers are written to by a task per socket with a bounded queue (`Peer`), so that a slow
browser never holds up the agent's connection: an owner whose browser falls behind has their
session closed (`slow_client`); a watcher who falls behind is dropped.

Watchers (`audience.py`) may be on any replica: those on others are reached over the bus
(`remote.py`). Ending a session works from any replica (over the bus).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from steward.protocol import (
    MAX_TERMINAL_CHUNK,
    TerminalClose,
    TerminalExit,
    TerminalInput,
    TerminalOpen,
    TerminalOpened,
    TerminalOutput,
    TerminalResize,
)
from steward.server.audit.auditor import Auditor
from steward.server.db.base import utcnow
from steward.server.errors import StewardError
from steward.server.terminal.audience import Audience, Watcher
from steward.server.terminal.models import (
    CloseReason,
    RecordingFailurePolicy,
    SessionStatus,
)
from steward.server.terminal.peer import Peer
from steward.server.terminal.recording import Recording, RecordingFailed
from steward.server.terminal.schemas import TerminalPolicyPublic

if TYPE_CHECKING:
    from steward.server.terminal.registry import TerminalRegistry

log = logging.getLogger(__name__)

CLOSE_WAIT_S = 3.0  # after `terminal.close`, how long the agent has to say the shell ended
OPEN_WAIT_S = 20.0  # how long the agent has to open the shell
TAIL_CHARS = 256 * 1024  # output kept in memory for watchers who join late

# WebSocket close codes the browsers see (4000-4999 are the application's).
CLOSE_CODES: dict[str, int] = {
    CloseReason.EXITED: 1000,
    CloseReason.USER: 1000,
    CloseReason.IDLE_TIMEOUT: 4408,
    CloseReason.MAX_DURATION: 4408,
    CloseReason.TERMINATED: 4410,
    CloseReason.FLOOD: 4429,
    CloseReason.SLOW_CLIENT: 4429,
    CloseReason.RECORDING_FAILED: 4500,
    CloseReason.AGENT_DISCONNECTED: 4502,
    CloseReason.OPEN_FAILED: 4409,
    CloseReason.SERVER_STOPPED: 1001,
    CloseReason.SERVER_LOST: 4503,
}


class Relay(Protocol):
    """What this module needs of `gateway.relay.Relay`."""

    def listen(self, key: str, on_message: Callable[[Any], Awaitable[None]]) -> None: ...

    def unlisten(self, key: str) -> None: ...

    async def send(
        self,
        device_id: uuid.UUID,
        message: TerminalOpen | TerminalInput | TerminalResize | TerminalClose,
    ) -> None: ...


@dataclass
class SessionContext:
    """Who opened which session where, under which policy."""

    session_id: uuid.UUID
    tenant_id: uuid.UUID
    device_id: uuid.UUID
    hostname: str
    user_id: uuid.UUID
    user_email: str
    auditor: Auditor  # the owner's
    policy: TerminalPolicyPublic
    cols: int
    rows: int


class LiveTerminal:
    def __init__(
        self,
        context: SessionContext,
        registry: TerminalRegistry,
        recording: Recording | None,
        owner: Peer,
    ) -> None:
        self.context = context
        self.id = context.session_id
        self._registry = registry
        self._relay = registry.relay
        self.recording = recording
        self._recording_path = recording.relative if recording is not None else ""
        self.recording_failed = recording is None
        self.owner = owner
        self.audience = Audience(owner)
        self.started = time.monotonic()
        self.last_input = self.started
        self.opened = asyncio.Event()
        self.exited = asyncio.Event()
        self.stopped = asyncio.Event()
        self.reason = ""
        self.stopped_by = ""
        self.exit_code: int | None = None
        self.agent_error = ""
        self.shell = ""
        self.output_chars = 0
        self.input_chars = 0
        self.cols, self.rows = context.cols, context.rows
        self._tail: deque[str] = deque()
        self._tail_chars = 0
        self._background: set[asyncio.Task[None]] = set()

    # ---- what ends a session -----------------------------------------------------------------

    def request_stop(self, reason: CloseReason, by: str = "") -> None:
        if self.stopped.is_set():
            return
        self.reason = reason
        self.stopped_by = by
        self.stopped.set()

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    # ---- from the agent ----------------------------------------------------------------------

    async def on_agent(self, message: TerminalOpened | TerminalOutput | TerminalExit) -> None:
        """The relay's listener (runs on the agent connection's task: never waits long)."""
        if isinstance(message, TerminalOpened):
            self.shell = message.shell
            self.opened.set()
            self.owner.push({"type": "opened", "session_id": str(self.id), "shell": message.shell})
            self._spawn(self._mark_open())
        elif isinstance(message, TerminalOutput):
            self._output(message.data)
        elif isinstance(message, TerminalExit):
            self.exit_code = message.exit_code
            self.agent_error = message.error
            self.exited.set()
            if message.error == "the agent disconnected":
                self.request_stop(CloseReason.AGENT_DISCONNECTED)
            elif not self.opened.is_set():
                self.request_stop(CloseReason.OPEN_FAILED)
            else:
                self.request_stop(CloseReason.EXITED)

    def _output(self, data: str) -> None:
        self.output_chars += len(data)
        self._record(lambda r: r.output(self.elapsed_s, data))
        self._tail.append(data)
        self._tail_chars += len(data)
        while self._tail_chars > TAIL_CHARS and len(self._tail) > 1:
            self._tail_chars -= len(self._tail.popleft())
        frame = {"type": "output", "data": data}
        if not self.owner.push(frame):
            self.request_stop(CloseReason.SLOW_CLIENT)
        self.audience.push(frame)

    # ---- from the owner's browser ------------------------------------------------------------

    async def input(self, data: str) -> None:
        self.last_input = time.monotonic()
        self.input_chars += len(data)
        if self.context.policy.record_input:
            self._record(lambda r: r.input(self.elapsed_s, data))
        for start in range(0, len(data), MAX_TERMINAL_CHUNK):
            chunk = data[start : start + MAX_TERMINAL_CHUNK]
            await self._relay.send(
                self.context.device_id, TerminalInput(session_id=str(self.id), data=chunk)
            )

    async def resize(self, cols: int, rows: int) -> None:
        self.last_input = time.monotonic()
        if (cols, rows) == (self.cols, self.rows):
            return
        self.cols, self.rows = cols, rows
        self._record(lambda r: r.resize(self.elapsed_s, cols, rows))
        await self._relay.send(
            self.context.device_id, TerminalResize(session_id=str(self.id), cols=cols, rows=rows)
        )
        self.audience.push({"type": "resize", "cols": cols, "rows": rows})

    # ---- the recording -----------------------------------------------------------------------

    def _record(self, write: Callable[[Recording], None]) -> None:
        if self.recording is None:
            return
        try:
            write(self.recording)
        except RecordingFailed as exc:
            self.recording_failed = True
            self.recording = None
            self._spawn(self._recording_failed(str(exc)))

    async def _recording_failed(self, error: str) -> None:
        strict = self.context.policy.recording_failure_policy is RecordingFailurePolicy.STRICT
        log.warning("terminal %s: recording failed: %s", self.id, error)
        await self.context.auditor(
            "terminal.recording_failed",
            "failure",
            target=str(self.id),
            device_id=self.context.device_id,
            risk="high",
            detail={
                "session_id": str(self.id),
                "error": error[:300],
                "policy": self.context.policy.recording_failure_policy.value,
            },
        )
        if strict:
            self.request_stop(CloseReason.RECORDING_FAILED)
        else:
            self.owner.push({"type": "notice", "code": "recording_failed"})

    # ---- watchers ----------------------------------------------------------------------------

    def add_watcher(self, watcher: Watcher) -> None:
        """The output so far, then live output."""
        opened = {
            "type": "opened",
            "session_id": str(self.id),
            "shell": self.shell,
            "cols": self.cols,
            "rows": self.rows,
            "owner": self.context.user_email,
            "read_only": True,
        }
        tail = [{"type": "output", "data": "".join(self._tail)}] if self._tail else []
        self.audience.add(watcher, [opened, *tail])

    def remove_watcher(self, key: str) -> None:
        self.audience.remove(key)

    def watcher_names(self) -> list[str]:
        return self.audience.names()

    # ---- the session's life ------------------------------------------------------------------

    async def run(self, browser: Coroutine[Any, Any, None]) -> None:
        """Open the shell, serve the owner's browser (`browser` reads its frames) until
        something ends the session, then end it properly."""
        key = str(self.id)
        self._registry.add(self)
        self._relay.listen(key, self.on_agent)
        tasks: list[asyncio.Task[None]] = []
        try:
            try:
                await self._relay.send(
                    self.context.device_id,
                    TerminalOpen(
                        session_id=key,
                        cols=self.cols,
                        rows=self.rows,
                        shell=self.context.policy.shell,
                        run_as=self.context.policy.run_as,
                    ),
                )
            except StewardError as exc:
                browser.close()
                self.agent_error = exc.message
                self.request_stop(CloseReason.OPEN_FAILED)
            else:
                tasks = [
                    asyncio.create_task(browser),
                    asyncio.create_task(self._clock()),
                ]
            await self.stopped.wait()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if not self.exited.is_set() and self.reason != CloseReason.OPEN_FAILED:
                with contextlib.suppress(Exception):
                    await self._relay.send(self.context.device_id, TerminalClose(session_id=key))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.exited.wait(), CLOSE_WAIT_S)
        finally:
            self._relay.unlisten(key)
            try:
                await self._finish()
            finally:  # held until its row says closed (the leader's sweep looks for the rest)
                self._registry.remove(self)

    async def _clock(self) -> None:
        policy = self.context.policy
        scale = self._registry.time_scale
        idle_s, max_s = policy.idle_timeout_s * scale, policy.max_duration_s * scale
        open_deadline = self.started + OPEN_WAIT_S
        while True:
            now = time.monotonic()
            if not self.opened.is_set() and now >= open_deadline:
                self.agent_error = "the agent did not open the terminal in time"
                self.request_stop(CloseReason.OPEN_FAILED)
                return
            if now - self.started >= max_s:
                self.request_stop(CloseReason.MAX_DURATION)
                return
            if now - self.last_input >= idle_s:
                self.request_stop(CloseReason.IDLE_TIMEOUT)
                return
            left = min(self.last_input + idle_s, self.started + max_s) - now
            await asyncio.sleep(max(0.05, min(left, 1.0)))

    async def _finish(self) -> None:
        opened = self.opened.is_set()
        size, digest, error = 0, "", self.agent_error
        if self.recording is not None:
            try:
                self.recording.close()
            except RecordingFailed as exc:
                self.recording_failed = True
                error = error or str(exc)
            size, digest = self.recording.size, self.recording.sha256
        ended = utcnow()
        duration_s = round(self.elapsed_s, 3)
        status = SessionStatus.CLOSED if opened else SessionStatus.FAILED
        try:
            await self._registry.save_end(
                self.context,
                status=status,
                reason=self.reason,
                closed_by=self.stopped_by,
                exit_code=self.exit_code,
                error=error,
                ended_at=ended,
                shell=self.shell,
                recording_bytes=size,
                recording_sha256=digest,
                recording_failed=self.recording_failed,
                output_chars=self.output_chars,
                input_chars=self.input_chars,
            )
        except Exception:
            log.exception("terminal %s: could not save its end", self.id)
        detail: dict[str, Any] = {
            "session_id": str(self.id),
            "reason": self.reason,
            "duration_s": duration_s,
            "exit_code": self.exit_code,
            "sha256": digest,
            "size": size,
            "recording": self._recording_path if size else "",
            "recording_failed": self.recording_failed,
            "input_recorded": self.context.policy.record_input,
        }
        if error:
            detail["error"] = error[:255]
        if self.stopped_by:
            detail["closed_by"] = self.stopped_by
        await self.context.auditor(
            "terminal.close" if opened else "terminal.open_failed",
            "success" if opened else "failure",
            target=str(self.id),
            device_id=self.context.device_id,
            detail=detail,
        )
        message = {
            "type": "exit",
            "reason": self.reason,
            "exit_code": self.exit_code,
            "error": error[:255],
        }
        code = CLOSE_CODES.get(self.reason, 1000)
        self.owner.push(message)
        self.owner.end(code, self.reason)
        self.audience.end(message, code, self.reason)
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def _mark_open(self) -> None:
        with contextlib.suppress(Exception):
            await self._registry.save_open(self.context, self.shell)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
