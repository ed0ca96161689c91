"""A browser's terminal socket, written to by a task of its own (a slow browser never holds up
the agent's connection)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

PEER_QUEUE_FRAMES = 2048


class Peer:
    """One browser socket: JSON frames queued and sent by a task of its own."""

    def __init__(
        self,
        name: str,
        send_text: Callable[[str], Awaitable[None]],
        close: Callable[[int, str], Awaitable[None]],
        *,
        key: str = "",
        max_frames: int = PEER_QUEUE_FRAMES,
    ) -> None:
        self.name = name
        self.key = key or uuid.uuid4().hex
        self._send_text = send_text
        self._close = close
        self._queue: asyncio.Queue[str | tuple[int, str]] = asyncio.Queue(max_frames)
        self._task = asyncio.get_running_loop().create_task(self._run())
        self.closing = False

    def push(self, frame: dict[str, Any]) -> bool:
        """Queue a frame; False (and nothing queued) when the browser is too far behind."""
        return self.push_text(json.dumps(frame))

    def push_text(self, text: str) -> bool:
        """`push` for a frame already in JSON."""
        if self.closing:
            return True
        try:
            self._queue.put_nowait(text)
        except asyncio.QueueFull:
            return False
        return True

    def end(self, code: int, reason: str) -> None:
        """Close the socket after what is queued (at once if the queue is full)."""
        if self.closing:
            return
        self.closing = True
        try:
            self._queue.put_nowait((code, reason))
        except asyncio.QueueFull:
            self._task.cancel()
            asyncio.get_running_loop().create_task(self._close_quietly(code, reason))

    async def _run(self) -> None:
        try:
            while True:
                item = await self._queue.get()
                if isinstance(item, tuple):
                    await self._close_quietly(*item)
                    return
                await self._send_text(item)
        except asyncio.CancelledError:
            raise
        except Exception:  # the socket went away: nothing more to send
            self.closing = True

    async def _close_quietly(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await self._close(code, reason[:120])

    async def wait_closed(self, timeout_s: float = 5.0) -> None:
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
        if not self._task.done():
            self._task.cancel()
