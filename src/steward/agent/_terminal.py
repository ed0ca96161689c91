"""Web terminal sessions on this machine: a shell on a pseudo-terminal per `terminal.open`.

Linux (and other POSIX systems): `os.openpty()`, the shell started in a new session with the
pty's slave side as its controlling terminal, the master read without blocking through the
event loop. Windows: ConPTY through pywinpty, read on a worker thread.

Output is decoded as UTF-8 incrementally (a character split across reads is never broken;
invalid bytes become U+FFFD) and emitted as `terminal.output` frames numbered from 0. `emit`
waits while the agent's outgoing queue is full; meanwhile nothing is read from the pty, so a
chatty program is slowed down by the kernel (its writes block) instead of being buffered here.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import logging
import os
import shutil
import signal
import struct
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

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

logger = logging.getLogger("steward.agent")

Emit = Callable[[AgentStreamMessage], Awaitable[None]]

MAX_SESSIONS = 16  # per agent; more opens are answered with `terminal.exit` and an error
READ_BYTES = 16 * 1024  # per read: decodes to at most this many characters (< MAX_TERMINAL_CHUNK)
MAX_PENDING_INPUT = 1024 * 1024  # keystrokes waiting for the shell to read them
EXIT_DRAIN_S = 0.5  # after the shell exits, how long its output may still arrive
HANGUP_GRACE_S = 1.0  # after SIGHUP, before SIGKILL
_ERROR_LENGTH = 255  # TerminalExit.error
TERM = "xterm-256color"


class TerminalError(Exception):
    """A session could not be opened (the message goes to the server as `error`)."""


class _Pty:
    """One shell on one pseudo-terminal; the platform parts of a session."""

    pid = 0
    shell = ""

    async def start(self, message: TerminalOpen) -> None:
        raise NotImplementedError

    async def read(self) -> bytes:
        """The next output, b"" at the end."""
        raise NotImplementedError

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def resize(self, cols: int, rows: int) -> None:
        raise NotImplementedError

    async def wait(self) -> int | None:
        """The shell's exit code once it has exited."""
        raise NotImplementedError

    async def kill(self) -> None:
        """End the shell and everything it started."""
        raise NotImplementedError

    def release(self) -> None:
        """Free the descriptors (after `kill`, or after the shell exited)."""


# ---- POSIX -----------------------------------------------------------------------------------


def _login_shell(requested: str, account_shell: str) -> str:
    """The program to run: the tenant's choice, else the account's login shell, $SHELL, sh."""
    for candidate in (requested, account_shell, os.environ.get("SHELL", ""), "/bin/sh"):
        if not candidate:
            continue
        found = candidate if os.path.isabs(candidate) else shutil.which(candidate)
        if found and os.access(found, os.X_OK) and not os.path.isdir(found):
            return found
        if candidate == requested:
            raise TerminalError(f"shell not found: {requested}")
    raise TerminalError("no shell found")


def _prepare(message: TerminalOpen) -> tuple[str, str, dict[str, str], Any, dict[str, Any]]:
    """(shell, home, environment, account, Popen's user arguments) of a session."""
    import pwd

    account: Any = None
    user_kwargs: dict[str, Any] = {}
    if message.run_as:
        if os.geteuid() != 0:
            raise TerminalError("run_as needs the agent to run as root")
        try:
            account = pwd.getpwnam(message.run_as)
        except KeyError:
            raise TerminalError(f"no such user: {message.run_as}") from None
        user_kwargs = {
            "user": account.pw_uid,
            "group": account.pw_gid,
            "extra_groups": os.getgrouplist(account.pw_name, account.pw_gid),
        }
    else:
        with contextlib.suppress(KeyError):
            account = pwd.getpwuid(os.geteuid())
    shell = _login_shell(message.shell, account.pw_shell if account else "")
    home = account.pw_dir if account and os.path.isdir(account.pw_dir) else "/"
    env = {
        key: value
        for key, value in os.environ.items()
        if key in {"PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ"}
    }
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    env.setdefault("LANG", "C.UTF-8")
    env |= {"TERM": TERM, "SHELL": shell, "HOME": home}
    if account is not None:
        env |= {"USER": account.pw_name, "LOGNAME": account.pw_name}
    return shell, home, env, account, user_kwargs


class _PosixPty(_Pty):
    def __init__(self) -> None:
        self._master = -1
        self._process: asyncio.subprocess.Process | None = None
        self._pending = bytearray()  # input the pty did not take yet
        self._writing = False

    async def start(self, message: TerminalOpen) -> None:
        import fcntl
        import termios

        shell, home, env, account, user_kwargs = _prepare(message)
        master, slave = os.openpty()
        try:
            fcntl.ioctl(slave, termios.TIOCSWINSZ, _winsize(message.cols, message.rows))
            if user_kwargs:  # the terminal belongs to whoever uses it (mesg, write, ssh ...)
                os.fchown(slave, account.pw_uid, -1)
            # `-name` as argv[0]: a login shell, whatever the shell is.
            self._process = await asyncio.create_subprocess_exec(
                "-" + os.path.basename(shell),
                executable=shell,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                cwd=home,
                env=env,
                start_new_session=True,  # setsid(): the shell leads a session of its own ...
                preexec_fn=_take_controlling_tty,  # ... with this pty as its terminal
                close_fds=True,
                **user_kwargs,
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        self._master = master
        self.pid = self._process.pid
        self.shell = shell

    async def read(self) -> bytes:
        loop = asyncio.get_running_loop()
        while True:
            try:
                return os.read(self._master, READ_BYTES)
            except BlockingIOError:
                pass
            except OSError:  # EIO: every holder of the slave side has closed it
                return b""
            ready = loop.create_future()
            loop.add_reader(self._master, _resolve, ready)
            try:
                await ready
            finally:
                loop.remove_reader(self._master)

    def write(self, data: bytes) -> None:
        if len(self._pending) + len(data) > MAX_PENDING_INPUT:
            logger.warning("terminal input dropped: the shell is not reading")
            return
        self._pending += data
        self._flush_input()

    def _flush_input(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending and self._master >= 0:
            try:
                written = os.write(self._master, self._pending)
            except BlockingIOError:
                break
            except OSError:
                self._pending.clear()
                break
            del self._pending[:written]
        wanted = bool(self._pending) and self._master >= 0
        if wanted and not self._writing:
            loop.add_writer(self._master, self._flush_input)
        elif not wanted and self._writing:
            loop.remove_writer(self._master)
        self._writing = wanted

    def resize(self, cols: int, rows: int) -> None:
        import fcntl
        import termios

        if self._master >= 0:
            with contextlib.suppress(OSError):
                fcntl.ioctl(self._master, termios.TIOCSWINSZ, _winsize(cols, rows))

    async def wait(self) -> int | None:
        assert self._process is not None
        return await self._process.wait()

    async def kill(self) -> None:
        if self._process is None or self._process.returncode is not None:
            _kill_session(self.pid, signal.SIGKILL)  # leftovers of an exited shell
            return
        _kill_session(self.pid, signal.SIGHUP)  # what closing a terminal window does
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._process.wait()), HANGUP_GRACE_S)
        _kill_session(self.pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._process.wait(), HANGUP_GRACE_S)

    def release(self) -> None:
        if self._master >= 0:
            loop = asyncio.get_running_loop()
            if self._writing:
                loop.remove_writer(self._master)
                self._writing = False
            loop.remove_reader(self._master)
            os.close(self._master)
            self._master = -1


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _winsize(cols: int, rows: int) -> bytes:
    return struct.pack("HHHH", rows, cols, 0, 0)


def _take_controlling_tty() -> None:  # pragma: no cover  (runs in the child)
    import fcntl
    import termios

    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _session_members(session_id: int) -> list[int]:
    """Processes of a session (Linux: from /proc), the shell's background jobs included even
    when job control moved them to process groups of their own."""
    members: list[int] = []
    proc = Path("/proc")
    if not proc.is_dir():
        return members
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 3 and fields[3] == str(session_id):
            members.append(int(entry.name))
    return members


def _kill_session(leader: int, sig: signal.Signals) -> None:
    if leader <= 0:
        return
    with contextlib.suppress(OSError):
        os.killpg(leader, sig)
    for pid in _session_members(leader):
        with contextlib.suppress(OSError):
            os.kill(pid, sig)


# ---- Windows ---------------------------------------------------------------------------------


class _WindowsPty(_Pty):  # pragma: no cover  (needs Windows and pywinpty)
    """ConPTY through pywinpty. Its reads block: they run on a worker thread."""

    def __init__(self) -> None:
        self._process: Any = None

    async def start(self, message: TerminalOpen) -> None:
        try:
            from winpty import PtyProcess
        except ImportError:
            raise TerminalError("terminals on Windows need the pywinpty package") from None
        if message.run_as:
            raise TerminalError("run_as is not supported on Windows")
        shell = message.shell or os.environ.get("COMSPEC", "cmd.exe")
        env = dict(os.environ) | {"TERM": TERM}
        self._process = await asyncio.to_thread(
            PtyProcess.spawn, shell, dimensions=(message.rows, message.cols), env=env
        )
        self.pid = int(getattr(self._process, "pid", 0) or 0)
        self.shell = shell

    async def read(self) -> bytes:
        while True:
            try:
                text = await asyncio.to_thread(self._process.read, READ_BYTES)
            except EOFError:
                return b""
            if text:
                return str(text).encode("utf-8", "replace")

    def write(self, data: bytes) -> None:
        self._process.write(data.decode("utf-8", "replace"))

    def resize(self, cols: int, rows: int) -> None:
        self._process.setwinsize(rows, cols)

    async def wait(self) -> int | None:
        await asyncio.to_thread(self._process.wait)
        status = self._process.exitstatus
        return int(status) if status is not None else None

    async def kill(self) -> None:
        if self._process is not None and self._process.isalive():
            await asyncio.to_thread(self._process.terminate, True)


# ---- sessions --------------------------------------------------------------------------------


class _Session:
    def __init__(self, session_id: str, emit: Emit) -> None:
        self.id = session_id
        self._emit = emit
        self._pty: _Pty = _WindowsPty() if sys.platform == "win32" else _PosixPty()
        self._seq = 0
        self._closing = False
        self.task: asyncio.Task[None] | None = None

    async def run(self, message: TerminalOpen) -> None:
        """Open, pump output until the end, then say how it ended (exactly one exit frame)."""
        exit_code: int | None = None
        error = ""
        started = False
        try:
            await self._pty.start(message)
            started = True
            await self._emit(
                TerminalOpened(session_id=self.id, pid=self._pty.pid, shell=self._pty.shell[:255])
            )
            exit_code = await self._pump()
        except TerminalError as exc:
            error = str(exc)
        except asyncio.CancelledError:
            error = "terminal closed"
            raise
        except OSError as exc:
            error = f"terminal failed: {exc.strerror or exc}"
            logger.warning("terminal %s failed: %s", self.id, exc)
        finally:
            if started:
                with contextlib.suppress(Exception):
                    await self._pty.kill()
            with contextlib.suppress(Exception):
                self._pty.release()
            if self._closing and not error:
                error = "closed"
            with contextlib.suppress(Exception):
                ended = TerminalExit(
                    session_id=self.id, exit_code=exit_code, error=error[:_ERROR_LENGTH]
                )
                await self._emit(ended)

    async def _pump(self) -> int | None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        exited = asyncio.ensure_future(self._pty.wait())
        reading: asyncio.Future[bytes] | None = None
        try:
            while True:
                reading = asyncio.ensure_future(self._pty.read())
                done, _ = await asyncio.wait({reading, exited}, return_when=asyncio.FIRST_COMPLETED)
                if reading not in done:
                    # The shell is gone; what it wrote last (and what its children still
                    # write) may take a moment to arrive.
                    try:
                        await asyncio.wait_for(asyncio.shield(reading), EXIT_DRAIN_S)
                    except TimeoutError:
                        break
                chunk = reading.result()
                reading = None
                if not chunk:
                    break
                await self._send(decoder.decode(chunk))
            await self._send(decoder.decode(b"", final=True))
            try:
                return await asyncio.wait_for(asyncio.shield(exited), EXIT_DRAIN_S)
            except TimeoutError:  # the pty closed under a shell still running
                await self._pty.kill()
                return await exited
        finally:
            if reading is not None:
                reading.cancel()
            if not exited.done():
                exited.cancel()

    async def _send(self, text: str) -> None:
        if not text:
            return
        await self._emit(TerminalOutput(session_id=self.id, seq=self._seq, data=text))
        self._seq += 1

    def write(self, data: str) -> None:
        self._pty.write(data.encode("utf-8", "surrogatepass"))

    def resize(self, cols: int, rows: int) -> None:
        self._pty.resize(cols, rows)

    async def close(self) -> None:
        self._closing = True
        await self._pty.kill()


class TerminalManager:
    """Owns every terminal session of the agent. `emit` queues a frame for the server (it
    waits while the outgoing queue is full: that is the backpressure on a chatty shell)."""

    def __init__(self, emit: Emit, *, max_sessions: int = MAX_SESSIONS) -> None:
        self._emit = emit
        self._max_sessions = max_sessions
        self._sessions: dict[str, _Session] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    def handle(
        self, message: TerminalOpen | TerminalInput | TerminalResize | TerminalClose
    ) -> None:
        """React to one server frame without blocking (work goes to tasks)."""
        session = self._sessions.get(message.session_id)
        if isinstance(message, TerminalOpen):
            self._open(message)
        elif session is None:
            logger.debug("terminal frame for unknown session %s", message.session_id)
        elif isinstance(message, TerminalInput):
            try:
                session.write(message.data)
            except OSError as exc:
                logger.warning("terminal %s: input failed: %s", message.session_id, exc)
        elif isinstance(message, TerminalResize):
            session.resize(message.cols, message.rows)
        elif isinstance(message, TerminalClose):
            self._spawn(session.close())

    def _open(self, message: TerminalOpen) -> None:
        if message.session_id in self._sessions:
            logger.warning("terminal %s is open already", message.session_id)
            return
        if len(self._sessions) >= self._max_sessions:
            refusal = TerminalExit(
                session_id=message.session_id,
                error=f"too many terminal sessions on this machine (at most {self._max_sessions})",
            )
            self._spawn(self._emit(refusal))
            return
        session = _Session(message.session_id, self._emit)
        self._sessions[session.id] = session

        async def run() -> None:
            try:
                await session.run(message)
            finally:
                self._sessions.pop(session.id, None)

        session.task = self._spawn(run())

    def _spawn(self, work: Awaitable[None]) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(work)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def aclose(self) -> None:
        """Kill every session (the connection ended or the agent stops)."""
        sessions = list(self._sessions.values())
        await asyncio.gather(*(session.close() for session in sessions), return_exceptions=True)
        tasks = list(self._tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=2 * HANGUP_GRACE_S + EXIT_DRAIN_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._sessions.clear()
