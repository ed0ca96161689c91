"""Presence: which replica holds which agent's connection.

The hub tells the presence map of every connect and disconnect (in memory, O(1)); a flush the
runtime runs every few seconds writes the changes to Redis in one pipeline, as
`<prefix>:presence:<device id>` = replica id with an expiry, and renews this replica's keys
every third of that expiry. A replica that dies without saying goodbye loses its keys when they
expire. An agent that moved to another replica is never taken back: renewals and deletions
touch a key only while it still names this replica (small Lua scripts, one call per batch).

Without Redis (one process) the map answers from this process's own connections. With Redis
down, callers never see an error: changes wait in memory for the next flush (logged once) and
lookups answer from this process's connections.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import time
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING

import redis.asyncio as redis
from redis.exceptions import RedisError

from steward.server.bus.store import RedisOutage

if TYPE_CHECKING:
    from steward.server.settings import Settings


BATCH = 1000  # keys per renewal script call and per MGET

# KEYS: presence keys; ARGV: replica id, expiry in ms. Renews the keys that name this replica
# and re-creates those that expired meanwhile (Redis restarted, a long outage); a key that now
# names another replica (the agent moved) is left alone.
_CLAIM = """
local n = 0
for _, key in ipairs(KEYS) do
  local holder = redis.call('GET', key)
  if not holder or holder == ARGV[1] then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
    n = n + 1
  end
end
return n
"""

# KEYS: presence keys; ARGV: replica id. Deletes the keys that still name this replica.
_RELEASE = """
local n = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('DEL', key)
    n = n + 1
  end
end
return n
"""


def new_replica_id() -> str:
    """`hostname:pid:random`: unique even for two servers in one process (tests)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def _chunks(items: list[uuid.UUID], size: int) -> Iterable[list[uuid.UUID]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Presence:
    """One process: the agents connected here are the only ones it knows of."""

    def __init__(self, replica_id: str | None = None) -> None:
        self.replica_id = replica_id or new_replica_id()
        self._ours: set[uuid.UUID] = set()

    @property
    def count(self) -> int:
        return len(self._ours)

    def connected(self, device_id: uuid.UUID) -> None:
        self._ours.add(device_id)

    def disconnected(self, device_id: uuid.UUID) -> None:
        self._ours.discard(device_id)

    async def flush(self) -> None:
        """Nothing to share without Redis."""

    async def replicas_of(self, device_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
        """The replica holding each of these devices, for those that are connected."""
        return {d: self.replica_id for d in device_ids if d in self._ours}

    async def stop(self) -> None:
        """Nothing to release without Redis."""


class RedisPresence(Presence):
    """Several replicas: the map lives in Redis, each key expiring after `ttl_s`."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = "steward",
        ttl_s: float = 30.0,
        replica_id: str | None = None,
    ) -> None:
        super().__init__(replica_id)
        self._client = client
        self._prefix = prefix
        self.ttl_s = ttl_s
        self._changes: dict[uuid.UUID, bool] = {}  # since the last flush: True = connected
        self._renewed_at = float("-inf")
        self._outage = RedisOutage("presence")
        self._claim = client.register_script(_CLAIM)
        self._release = client.register_script(_RELEASE)

    def key(self, device_id: uuid.UUID) -> str:
        return f"{self._prefix}:presence:{device_id}"

    def connected(self, device_id: uuid.UUID) -> None:
        super().connected(device_id)
        self._changes[device_id] = True

    def disconnected(self, device_id: uuid.UUID) -> None:
        super().disconnected(device_id)
        self._changes[device_id] = False

    async def flush(self) -> None:
        """Write what changed since the last flush (one pipeline), then renew this replica's
        keys if a third of their expiry has passed. Never raises: on a Redis error the changes
        wait for the next flush and every key is renewed once Redis answers again."""
        changes, self._changes = self._changes, {}
        renew = time.monotonic() - self._renewed_at >= self.ttl_s / 3
        if not changes and not renew:
            return
        if self._outage.down:
            self._changes = changes | self._changes  # newer changes win
            return
        try:
            if changes:
                await self._write(changes)
            if renew:
                started = time.monotonic()
                await self._renew()
                self._renewed_at = started
        except (RedisError, OSError) as exc:
            self._changes = changes | self._changes
            self._renewed_at = float("-inf")  # keys may expire meanwhile: renew all on return
            self._outage.failed(exc)
            return
        self._outage.succeeded()

    async def _write(self, changes: dict[uuid.UUID, bool]) -> None:
        ttl_ms = int(self.ttl_s * 1000)
        gone = [d for d, up in changes.items() if not up]
        async with self._client.pipeline(transaction=False) as pipe:
            for device_id, up in changes.items():
                if up:  # the newest connection wins, wherever the agent was before
                    pipe.set(self.key(device_id), self.replica_id, px=ttl_ms)
            for batch in _chunks(gone, BATCH):
                await self._release(
                    keys=[self.key(d) for d in batch], args=[self.replica_id], client=pipe
                )
            await pipe.execute()

    async def _renew(self) -> None:
        ours = list(self._ours)
        if not ours:
            return
        ttl_ms = int(self.ttl_s * 1000)
        async with self._client.pipeline(transaction=False) as pipe:
            for batch in _chunks(ours, BATCH):
                await self._claim(
                    keys=[self.key(d) for d in batch], args=[self.replica_id, ttl_ms], client=pipe
                )
            await pipe.execute()

    async def replicas_of(self, device_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
        wanted = list(device_ids)
        if not wanted or self._outage.down:
            return await super().replicas_of(wanted)
        found: dict[uuid.UUID, str] = {}
        try:
            for batch in _chunks(wanted, BATCH):
                values = await self._client.mget([self.key(d) for d in batch])
                for device_id, value in zip(batch, values, strict=True):
                    if value is not None:
                        found[device_id] = value.decode() if isinstance(value, bytes) else value
        except (RedisError, OSError) as exc:
            self._outage.failed(exc)
            return await super().replicas_of(wanted)
        self._outage.succeeded()
        return found

    async def stop(self) -> None:
        """A clean stop releases this replica's keys at once instead of letting them expire,
        then closes the Redis client (the runtime's, shared with the rate limits)."""
        for device_id in list(self._ours):
            self.disconnected(device_id)
        self._outage = RedisOutage("presence")  # one last try, even during an outage
        try:
            await self.flush()
        finally:
            with contextlib.suppress(RedisError, OSError):
                await self._client.aclose()


def make_presence(settings: Settings, client: redis.Redis | None) -> Presence:
    """Shared through Redis when there is a client (`STEWARD_REDIS_URL`), else this process's."""
    if client is None:
        return Presence()
    return RedisPresence(client, prefix=settings.redis_prefix, ttl_s=settings.presence_ttl_s)
