"""The agent's end of the conversation with the server, whatever carries it.

A `Channel` knows what the agent has to say (heartbeats when they are due, acks and results
not yet delivered) and how it reacts to what it hears (new intervals, commands, errors). A
`Transport` only moves messages between a channel and the server; the channel outlives
connections, so undelivered acks and results wait in its outbox across reconnects.

Live output (`command.output`) has a queue of its own: best effort, bounded (the oldest frames
are dropped first), only filled while connected and emptied when a connection ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque

from steward import __version__
from steward.agent._collector import Collector
from steward.agent._errors import StateError
from steward.agent._executor import Stream, cancelled_result, failed_result
from steward.agent._fileops import FileService
from steward.agent._identity import hostname
from steward.agent._ledger import Ledger
from steward.agent._terminal import TerminalManager
from steward.agent.commands import run_command
from steward.protocol import (
    AgentConfig,
    CommandAck,
    CommandCancel,
    CommandDispatch,
    CommandOutput,
    CommandResult,
    ErrorMessage,
    FileRequest,
    FullHeartbeat,
    Hello,
    LightHeartbeat,
    TerminalClose,
    TerminalInput,
    TerminalOpen,
    TerminalResize,
    Welcome,
)
from steward.protocol.streams import (
    AgentStreamMessage,
    FileResponse,
    TerminalExit,
    TerminalOpened,
    TerminalOutput,
)

logger = logging.getLogger("steward.agent")

DEFAULT_LIGHT_INTERVAL_S = 30.0
DEFAULT_FULL_INTERVAL_S = 3600.0
# Bounds on what a server may ask for, so a bad config cannot make the agent spin or go mute.
MIN_INTERVAL_S = 0.2
MAX_INTERVAL_S = 24 * 3600.0
FULL_JITTER = 0.1  # full heartbeats every interval ± 10 %
STOPPED_ERROR = "agent stopped while the command was running"
_MAX_COMMAND_ID = 64  # CommandAck.command_id / CommandResult.command_id
# Live output frames waiting to be sent (at most ~16 KiB each); older ones are dropped.
MAX_OUTPUT_FRAMES = 256
# Terminal and file frames waiting to be sent; a producer waits for room (backpressure).
MAX_STREAM_FRAMES = 64

OutgoingMessage = CommandAck | CommandResult | CommandOutput | AgentStreamMessage


class Channel:
    """One per agent, shared by the transports it uses in turn. Not thread-safe: use it from
    the agent's event loop."""

    def __init__(self, ledger: Ledger, collector: Collector) -> None:
        self.ledger = ledger
        self.collector = collector
        self.light_interval_s = DEFAULT_LIGHT_INTERVAL_S
        self.full_interval_s = DEFAULT_FULL_INTERVAL_S
        self.device_id: str | None = None
        self.connected_at: float | None = None  # monotonic; None until the server answered
        self.is_connected = False
        self.stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._next_light = time.monotonic()
        self._next_full = time.monotonic()
        self._outbox: dict[tuple[str, str], CommandAck | CommandResult] = {}
        self._output: deque[CommandOutput] = deque(maxlen=MAX_OUTPUT_FRAMES)
        self._commands: dict[str, asyncio.Task[None]] = {}
        self._cancels: dict[str, asyncio.Event] = {}
        self._cancelling: set[str] = set()  # being recorded as cancelled before they ran
        self._recording: set[asyncio.Task[None]] = set()
        # Terminal and file frames: only while connected over a WebSocket, dropped on reconnect.
        self._streams: deque[AgentStreamMessage] = deque()
        self._stream_room = asyncio.Condition()
        self.streaming = False  # True while a WebSocket (not the poll) carries the channel
        self.terminals = TerminalManager(self.emit_stream)
        self.files = FileService(self.emit_stream)
        for result in ledger.undelivered():  # from before a restart
            self._queue(result)

    # ---- connection lifecycle -----------------------------------------------------------

    def hello(self) -> Hello:
        return Hello(agent_version=__version__, hostname=hostname())

    def begin_connection(self) -> None:
        """A transport is about to connect: a full and a light heartbeat are due as soon as
        it is up, so the console shows live figures at once, not an interval later."""
        now = time.monotonic()
        self.connected_at = None
        self._output.clear()  # live output is not carried over to a new connection
        self._streams.clear()  # nor terminal and file frames: their sessions ended with it
        self._next_full = now
        self._next_light = now

    def on_connected(self, welcome: Welcome | None = None) -> None:
        """The server has accepted the agent (a `welcome`, or a first successful poll)."""
        self.connected_at = time.monotonic()
        self.is_connected = True
        if welcome is not None:
            self.device_id = welcome.device_id
            self.apply_intervals(
                welcome.light_heartbeat_interval_s, welcome.full_heartbeat_interval_s
            )

    def stop(self) -> None:
        self.stopping.set()
        self._wake.set()

    async def end_streams(self) -> None:
        """The WebSocket ended: its terminals and file requests end with it (the server
        forgot them too)."""
        self.streaming = False
        await self.terminals.aclose()
        await self.files.aclose()
        self._streams.clear()
        async with self._stream_room:
            self._stream_room.notify_all()

    async def aclose(self) -> None:
        """Stop running commands (their process groups are killed; the ledger records them
        as failed and their results are sent after the next start)."""
        await self.end_streams()
        tasks = [*self._commands.values(), *self._recording]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ---- what the server says -----------------------------------------------------------

    def apply_intervals(self, light_s: float, full_s: float) -> None:
        """New intervals count at once: a shorter one pulls the next heartbeat closer."""
        light_s, full_s = _bounded(light_s), _bounded(full_s)
        if (light_s, full_s) != (self.light_interval_s, self.full_interval_s):
            logger.info("heartbeat intervals: light %g s, full %g s", light_s, full_s)
        now = time.monotonic()
        if light_s != self.light_interval_s:
            self.light_interval_s = light_s
            self._next_light = min(self._next_light, now + light_s)
        if full_s != self.full_interval_s:
            self.full_interval_s = full_s
            self._next_full = min(self._next_full, now + _jittered(full_s))
        self._wake.set()

    def handle(self, message: object) -> None:
        """React to one server message. Commands start in the background."""
        if isinstance(message, CommandDispatch):
            self._on_dispatch(message)
        elif isinstance(message, CommandCancel):
            self._on_cancel(message.command_id)
        elif isinstance(message, AgentConfig):
            self.apply_intervals(
                message.light_heartbeat_interval_s, message.full_heartbeat_interval_s
            )
        elif isinstance(message, Welcome):
            self.on_connected(message)
        elif isinstance(message, TerminalOpen | TerminalInput | TerminalResize | TerminalClose):
            self.terminals.handle(message)
        elif isinstance(message, FileRequest):
            self.files.handle(message)
        elif isinstance(message, ErrorMessage):
            logger.warning("server error %s: %s", message.code, message.message)
        else:
            logger.warning("ignoring unexpected message %r", type(message).__name__)

    def _on_dispatch(self, dispatch: CommandDispatch) -> None:
        command_id = dispatch.command_id
        if not 1 <= len(command_id) <= _MAX_COMMAND_ID:
            logger.error("ignoring a command whose id the protocol cannot answer: %r", command_id)
            return
        if command_id in self._commands:
            self._queue(CommandAck(command_id=command_id))  # dispatched again while running
            return
        if command_id in self._cancelling:
            return  # its `cancelled` result is on its way
        entry = self.ledger.get(command_id)
        if entry is not None:  # never run a command twice
            if entry.result is not None:
                logger.info("command %s already ran here; sending its result again", command_id)
                self._queue(entry.result)
            return
        logger.info("running command %s (%s)", command_id, dispatch.command_type)
        self._cancels[command_id] = asyncio.Event()
        self._commands[command_id] = asyncio.create_task(
            self._execute(dispatch), name=f"steward-command-{command_id}"
        )

    def _on_cancel(self, command_id: str) -> None:
        """Stop a running command; make sure one that has not run never will; answer one
        that has finished with its result again."""
        if not 1 <= len(command_id) <= _MAX_COMMAND_ID or command_id in self._cancelling:
            return
        cancel = self._cancels.get(command_id)
        if cancel is not None:
            logger.info("cancelling command %s", command_id)
            cancel.set()
            return
        entry = self.ledger.get(command_id)
        if entry is not None:
            if entry.result is not None:
                self._queue(entry.result)
            return
        logger.info("command %s cancelled before it was dispatched", command_id)
        self._cancelling.add(command_id)
        task = asyncio.create_task(
            self._record_cancelled(command_id), name=f"steward-cancel-{command_id}"
        )
        self._recording.add(task)
        task.add_done_callback(self._recording.discard)

    async def _record_cancelled(self, command_id: str) -> None:
        result = cancelled_result(command_id)
        try:  # in the ledger first: a later dispatch of this id finds it and never runs it
            await asyncio.to_thread(self.ledger.finish, result)
        except StateError as exc:
            logger.error("cannot record the cancel of command %s: %s", command_id, exc)
        finally:
            self._cancelling.discard(command_id)
        self._queue(result)

    async def emit_stream(self, message: AgentStreamMessage) -> None:
        """Queue a terminal or file frame for the server. Waits while the queue is full (a
        chatty shell is slowed down, not buffered without end); dropped when no WebSocket
        carries the channel."""
        async with self._stream_room:
            await self._stream_room.wait_for(
                lambda: not self.streaming or len(self._streams) < MAX_STREAM_FRAMES
            )
            if not self.streaming:
                return
            self._streams.append(message)
        self._wake.set()

    def _on_output(self, command_id: str, stream: Stream, offset: int, data: str) -> None:
        if not self.is_connected:
            return  # best effort: nobody to tell, and the result carries it all
        self._output.append(
            CommandOutput(command_id=command_id, stream=stream, offset=offset, data=data)
        )
        self._wake.set()

    async def _execute(self, dispatch: CommandDispatch) -> None:
        command_id = dispatch.command_id
        cancel = self._cancels.setdefault(command_id, asyncio.Event())
        try:
            try:
                if not await asyncio.to_thread(self.ledger.start, command_id):
                    return
            except StateError as exc:
                # Without a ledger entry a restart could run it twice: better not run it.
                logger.error("cannot record command %s, not running it: %s", command_id, exc)
                self._queue(failed_result(command_id, f"agent cannot write its ledger: {exc}"))
                return
            self._queue(CommandAck(command_id=command_id))

            def on_output(stream: Stream, offset: int, data: str) -> None:
                self._on_output(command_id, stream, offset, data)

            try:
                result = await run_command(dispatch, on_output=on_output, cancel=cancel)
            except asyncio.CancelledError:
                with contextlib.suppress(StateError):
                    self.ledger.finish(failed_result(command_id, STOPPED_ERROR))
                raise
            except Exception as exc:  # a bug must not leave the command without a result
                logger.exception("command %s crashed the executor", command_id)
                result = failed_result(command_id, f"agent error: {type(exc).__name__}: {exc}")
            logger.info("command %s %s", command_id, result.status)
            try:  # recorded before it is sent, so the ledger can always send it again
                await asyncio.to_thread(self.ledger.finish, result)
            except StateError as exc:
                logger.error("cannot record the result of command %s: %s", command_id, exc)
            self._queue(result)
        finally:
            self._commands.pop(command_id, None)
            self._cancels.pop(command_id, None)

    # ---- what the agent says ------------------------------------------------------------

    def _queue(self, message: CommandAck | CommandResult) -> None:
        key = (message.type, message.command_id)
        self._outbox.pop(key, None)
        self._outbox[key] = message
        self._wake.set()

    def pending(self) -> list[OutgoingMessage]:
        """What to hand to the server: acks, then live output, then results (so the output
        of a command that just finished arrives before its result)."""
        acks = [message for message in self._outbox.values() if isinstance(message, CommandAck)]
        results = [m for m in self._outbox.values() if isinstance(m, CommandResult)]
        return [*acks, *self._output, *self._streams, *results]

    async def delivered(self, messages: list[OutgoingMessage]) -> None:
        """The transport has handed these to the server: forget them (results stay in the
        ledger, marked delivered, in case the server dispatches the command again)."""
        results: list[str] = []
        sent_output = {id(message) for message in messages if isinstance(message, CommandOutput)}
        sent_streams = [m for m in messages if isinstance(m, _STREAM_TYPES)]
        if sent_streams:
            sent_ids = {id(message) for message in sent_streams}
            while self._streams and id(self._streams[0]) in sent_ids:
                self._streams.popleft()
            if any(id(frame) in sent_ids for frame in self._streams):
                kept_streams = [frame for frame in self._streams if id(frame) not in sent_ids]
                self._streams.clear()
                self._streams.extend(kept_streams)
            async with self._stream_room:
                self._stream_room.notify_all()
        if sent_output:
            while self._output and id(self._output[0]) in sent_output:
                self._output.popleft()  # the usual case: the oldest frames went first
            if any(id(frame) in sent_output for frame in self._output):
                kept = [frame for frame in self._output if id(frame) not in sent_output]
                self._output.clear()
                self._output.extend(kept)
        for message in messages:
            if isinstance(message, (CommandOutput, *_STREAM_TYPES)):
                continue
            key = (message.type, message.command_id)
            if self._outbox.get(key) is message:
                del self._outbox[key]
            if isinstance(message, CommandResult):
                results.append(message.command_id)
        if results:
            try:
                await asyncio.to_thread(self.ledger.mark_delivered, results)
            except StateError as exc:  # at worst the result is sent again after a restart
                logger.error("cannot update the ledger: %s", exc)

    def light_due(self) -> bool:
        return time.monotonic() >= self._next_light

    def full_due(self) -> bool:
        return time.monotonic() >= self._next_full

    async def light_heartbeat(self) -> LightHeartbeat:
        """A fresh light heartbeat; the next one is due a light interval from now."""
        heartbeat = await asyncio.to_thread(self.collector.light)
        self._next_light = time.monotonic() + self.light_interval_s
        return heartbeat

    async def full_heartbeat(self) -> FullHeartbeat:
        heartbeat = await asyncio.to_thread(self.collector.full)
        self._next_full = time.monotonic() + _jittered(self.full_interval_s)
        return heartbeat

    async def wait_for_work(self) -> None:
        """Return once there is something to send (an outbox message, a due heartbeat) or
        the agent is stopping."""
        while not self.stopping.is_set():
            if self._outbox or self._output or self._streams or self.light_due() or self.full_due():
                return
            self._wake.clear()
            delay = min(self._next_light, self._next_full) - time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(delay, 0.0))

    async def sleep(self, seconds: float) -> None:
        """Sleep, but wake up at once when the agent is stopping."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), max(seconds, 0.0))

    @property
    def running_commands(self) -> list[str]:
        return list(self._commands)


_STREAM_TYPES = (TerminalOpened, TerminalOutput, TerminalExit, FileResponse)


def _bounded(interval_s: float) -> float:
    return min(max(float(interval_s), MIN_INTERVAL_S), MAX_INTERVAL_S)


def _jittered(interval_s: float) -> float:
    return interval_s * random.uniform(1 - FULL_JITTER, 1 + FULL_JITTER)  # noqa: S311
