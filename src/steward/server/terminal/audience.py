"""The watchers of one running session: read-only browsers that get the output so far, then
every frame, and are named to the owner.

A watcher's browser may be on this replica (its `Peer` writes to the socket) or on another one
(its `Peer` publishes the frames on the bus: `remote.py`). Joining and leaving are audited by
the watcher's socket (`watching.py`), on the watcher's replica, once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from steward.server.terminal.peer import Peer


@dataclass
class Watcher:
    peer: Peer
    name: str
    joined_at: float = field(default_factory=time.monotonic)


class Audience:
    """The watchers of one session, and the owner who is told who watches."""

    def __init__(self, owner: Peer) -> None:
        self._owner = owner
        self.watchers: dict[str, Watcher] = {}
        self.closed = False  # the session ended: nobody joins any more

    def add(self, watcher: Watcher, catch_up: list[dict[str, Any]]) -> None:
        """`catch_up` (the session so far), then live frames (no await: nothing interleaves)."""
        if self.closed:
            watcher.peer.end(1000, "exited")
            return
        for frame in catch_up:
            watcher.peer.push(frame)
        self.watchers[watcher.peer.key] = watcher
        self.announce()

    def remove(self, key: str) -> Watcher | None:
        watcher = self.watchers.pop(key, None)
        if watcher is not None:
            self.announce()
        return watcher

    def names(self) -> list[str]:
        return sorted({watcher.name for watcher in self.watchers.values()})

    def announce(self) -> None:
        frame = {"type": "watchers", "watchers": self.names()}
        self._owner.push(frame)
        for watcher in self.watchers.values():
            watcher.peer.push(frame)

    def push(self, frame: dict[str, Any]) -> None:
        """Send a frame to every watcher; those too far behind are dropped."""
        slow = [key for key, watcher in self.watchers.items() if not watcher.peer.push(frame)]
        for key in slow:
            self.watchers.pop(key).peer.end(4429, "slow_client")
        if slow:
            self.announce()

    def end(self, frame: dict[str, Any], code: int, reason: str) -> None:
        """The session ended: `frame`, then each watcher's socket is closed."""
        for watcher in self.watchers.values():
            watcher.peer.push(frame)
            watcher.peer.end(code, reason)
        self.watchers.clear()
        self.closed = True
