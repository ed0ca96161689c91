"""Watching a session held by another replica, over the bus.

Every replica subscribes once, at start-up, to two channels (never one per session: the bus
has no unsubscribe):

- `terminal.watch`, shared: `join` {session_id, tenant_id, watcher, replica, user_id, name}
  and `leave` {session_id, watcher} from a watcher's replica, and `watching` {watchers} (the
  watchers it still has: its heartbeat).
- `terminal.watchers.<replica id>`, this replica's own: `frame` {watcher, text} (one browser
  frame, in order), `end` {watcher, code, reason} and `alive` {watchers} (the holder's
  heartbeat) from the replica holding the session.

The replica holding the session answers a `join` by adding a watcher whose `Peer` publishes
each frame to the watcher's replica (a task per watcher keeps them in order; a watcher whose
frames pile up is dropped like a slow browser). The watcher's replica writes them to the
browser. Nobody answers within `join_wait_s`: the session ended, or its replica is gone, and
the watcher is refused as before.

Bus messages are hints and can be lost. Each side says every `heartbeat_s` which watchers it
still serves; a watcher not heard of for `silence_s` is ended: on the watcher's side the browser
is told the session ended (`server_lost`), on the holder's side the owner stops seeing its name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from steward.server.bus import Bus, MonitoredBus
from steward.server.terminal.audience import Watcher
from steward.server.terminal.models import CloseReason
from steward.server.terminal.peer import Peer

if TYPE_CHECKING:
    from steward.server.terminal.live import LiveTerminal

log = logging.getLogger(__name__)

WATCH_CHANNEL = "terminal.watch"
WATCHERS_CHANNEL = "terminal.watchers."  # + the watcher's replica id
HEARTBEAT_S = 2.0
SILENCE_S = 10.0  # nothing heard of a watcher for this long: its other side is gone
JOIN_WAIT_S = 3.0  # for the replica holding the session to answer a join
LOST_CLOSE_CODE = 4503


@dataclass
class Served:
    """A watcher on another replica of a session held here."""

    live: LiveTerminal
    peer: Peer
    replica: str
    heard: float = field(default_factory=time.monotonic)


@dataclass
class RemoteWatch:
    """A watcher here of a session held by another replica."""

    session_id: uuid.UUID
    peer: Peer
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    heard: float = field(default_factory=time.monotonic)


class RemoteWatching:
    """Both sides of watching across replicas (see the module's docstring)."""

    def __init__(
        self, bus: Bus, replica_id: str, find: Callable[[uuid.UUID], LiveTerminal | None]
    ) -> None:
        self._bus = bus
        self.replica_id = replica_id
        self._find = find
        self.heartbeat_s = HEARTBEAT_S
        self.silence_s = SILENCE_S
        self.join_wait_s = JOIN_WAIT_S
        self._served: dict[str, Served] = {}  # by watcher key
        self._watches: dict[str, RemoteWatch] = {}  # by watcher key
        self._beat: asyncio.Task[None] | None = None
        bus.subscribe(WATCH_CHANNEL, self._on_shared)
        bus.subscribe(WATCHERS_CHANNEL + replica_id, self._on_mine)

    @property
    def available(self) -> bool:
        """Whether other replicas may hold sessions (a bus between processes)."""
        return isinstance(self._bus, MonitoredBus)

    # ---- the watcher's side ------------------------------------------------------------------

    async def join(
        self, session_id: uuid.UUID, tenant_id: uuid.UUID, user_id: uuid.UUID, peer: Peer
    ) -> RemoteWatch | None:
        """Ask the replica holding the session to send it to `peer`; None if none answers."""
        watch = RemoteWatch(session_id, peer)
        self._watches[peer.key] = watch
        self._beating()
        await self._bus.publish(
            WATCH_CHANNEL,
            {
                "kind": "join",
                "session_id": str(session_id),
                "tenant_id": str(tenant_id),
                "watcher": peer.key,
                "replica": self.replica_id,
                "user_id": str(user_id),
                "name": peer.name,
            },
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(watch.answered.wait(), self.join_wait_s)
        if not watch.answered.is_set():
            await self.leave(watch)
            return None
        return watch

    async def leave(self, watch: RemoteWatch) -> None:
        """Said even when the holder ended it: if that was the silence, it may still be there."""
        self._watches.pop(watch.peer.key, None)
        await self._bus.publish(
            WATCH_CHANNEL,
            {"kind": "leave", "session_id": str(watch.session_id), "watcher": watch.peer.key},
        )

    async def _on_mine(self, message: dict[str, Any]) -> None:
        """From the holder. No await before the browser is written to: frames stay in order."""
        kind = message.get("kind")
        now = time.monotonic()
        if kind == "alive":
            for key in _keys(message):
                if (watch := self._watches.get(key)) is not None:
                    watch.heard = now
            return
        watch = self._watches.get(str(message.get("watcher")))
        if watch is None:
            return
        watch.heard = now
        watch.answered.set()
        if kind == "frame":
            if not watch.peer.push_text(str(message.get("text", ""))):
                del self._watches[watch.peer.key]
                watch.peer.end(4429, "slow_client")  # the socket's end says `leave`
        elif kind == "end":
            del self._watches[watch.peer.key]
            code = message.get("code")
            watch.peer.end(code if isinstance(code, int) else 1000, str(message.get("reason")))

    def _lost(self, watch: RemoteWatch) -> None:
        """The holder went silent: its replica stopped, or the bus lost what it sent."""
        del self._watches[watch.peer.key]
        reason = CloseReason.SERVER_LOST
        error = "the server holding this session stopped answering"
        watch.peer.push({"type": "exit", "reason": reason, "exit_code": None, "error": error})
        watch.peer.end(LOST_CLOSE_CODE, reason)

    # ---- the holder's side -------------------------------------------------------------------

    async def _on_shared(self, message: dict[str, Any]) -> None:
        kind = message.get("kind")
        if kind == "watching":
            now = time.monotonic()
            for key in _keys(message):
                if (served := self._served.get(key)) is not None:
                    served.heard = now
        elif kind == "join":
            self._attach(message)
        elif kind == "leave":
            served = self._served.pop(str(message.get("watcher")), None)
            if served is not None:
                self._detach(served, 1000, "left")

    def _attach(self, message: dict[str, Any]) -> None:
        try:
            session_id = uuid.UUID(str(message.get("session_id")))
        except ValueError:
            return
        live = self._find(session_id)
        key, replica = str(message.get("watcher", "")), str(message.get("replica", ""))
        if (
            live is None
            or live.stopped.is_set()
            or str(live.context.tenant_id) != message.get("tenant_id")
            or not key
            or not replica
            or key in self._served
        ):
            return  # not ours, or not any more
        channel = WATCHERS_CHANNEL + replica
        name = str(message.get("name", ""))[:254]

        async def send(text: str) -> None:
            await self._bus.publish(channel, {"kind": "frame", "watcher": key, "text": text})

        async def close(code: int, reason: str) -> None:
            self._served.pop(key, None)
            end = {"kind": "end", "watcher": key, "code": code, "reason": reason}
            await self._bus.publish(channel, end)

        peer = Peer(name, send, close, key=key)
        self._served[key] = Served(live, peer, replica)
        live.add_watcher(Watcher(peer, name))
        self._beating()
        log.info("terminal %s: watched from replica %s by %s", session_id, replica, name)

    def _detach(self, served: Served, code: int, reason: str) -> None:
        served.live.remove_watcher(served.peer.key)
        served.peer.end(code, reason)

    # ---- heartbeats --------------------------------------------------------------------------

    def _beating(self) -> None:
        if self._beat is None or self._beat.done():
            self._beat = asyncio.get_running_loop().create_task(
                self._heartbeats(), name="terminal watch heartbeats"
            )

    async def _heartbeats(self) -> None:
        """While there are remote watchers either way: say who is still here, end the silent."""
        while self._served or self._watches:
            await asyncio.sleep(self.heartbeat_s)
            try:
                await self._heartbeat()
            except Exception:
                log.warning("terminal watch heartbeat failed", exc_info=True)

    async def _heartbeat(self) -> None:
        now = time.monotonic()
        by_replica: dict[str, list[str]] = defaultdict(list)
        for key, served in list(self._served.items()):
            if served.peer.closing:
                self._served.pop(key, None)
            elif now - served.heard > self.silence_s:
                del self._served[key]
                self._detach(served, 1001, "watcher_lost")
            else:
                by_replica[served.replica].append(key)
        for replica, keys in by_replica.items():
            await self._bus.publish(WATCHERS_CHANNEL + replica, {"kind": "alive", "watchers": keys})
        for watch in list(self._watches.values()):
            if now - watch.heard > self.silence_s:
                self._lost(watch)
        if self._watches:
            await self._bus.publish(
                WATCH_CHANNEL, {"kind": "watching", "watchers": list(self._watches)}
            )

    async def aclose(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat


def _keys(message: dict[str, Any]) -> list[str]:
    keys = message.get("watchers")
    return [str(key) for key in keys] if isinstance(keys, list) else []
