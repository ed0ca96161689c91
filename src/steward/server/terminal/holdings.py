"""Which terminal sessions the running replicas hold, for closing those no replica holds.

A session lives in the memory of the replica its owner's browser reached; a replica that dies
without closing its sessions leaves their rows `open` for ever. Each replica notes the sessions
it holds (in memory, O(1)); with Redis a flush the runtime runs every few seconds writes them
as `<prefix>:terminal-holdings:<replica id>` = JSON list, with an expiry, so that the key of a
dead replica disappears. The leader's sweep (`service.close_lost_sessions`) reads every
replica's key. Without Redis the process's own sessions are all there are.
"""

from __future__ import annotations

import json
import time
import uuid

import redis.asyncio as redis
from redis.exceptions import RedisError

from steward.server.bus.store import RedisOutage


class SessionHoldings:
    """One process: the sessions held here are all the sessions held."""

    def __init__(self) -> None:
        self._ours: set[uuid.UUID] = set()

    def held(self, session_id: uuid.UUID) -> None:
        self._ours.add(session_id)

    def released(self, session_id: uuid.UUID) -> None:
        self._ours.discard(session_id)

    async def flush(self) -> None:
        """Nothing to share without Redis."""

    async def all_held(self) -> set[uuid.UUID] | None:
        """The sessions every live replica holds; None when that cannot be known now."""
        return set(self._ours)


class RedisSessionHoldings(SessionHoldings):
    """Several replicas: each one's sessions in a Redis key that expires after `ttl_s`."""

    def __init__(
        self, client: redis.Redis, replica_id: str, *, prefix: str = "steward", ttl_s: float = 30.0
    ) -> None:
        super().__init__()
        self._client = client
        self._pattern = f"{prefix}:terminal-holdings:*"
        self._key = f"{prefix}:terminal-holdings:{replica_id}"
        self.ttl_s = ttl_s
        self._written: set[uuid.UUID] | None = None  # what the key says, if known
        self._written_at = float("-inf")
        self._outage = RedisOutage("terminal holdings")

    async def flush(self) -> None:
        """Write this replica's sessions when they changed or a third of the expiry passed.
        Never raises: after a Redis error the next flush writes again."""
        renew = time.monotonic() - self._written_at >= self.ttl_s / 3
        if (self._ours == self._written and not renew) or self._outage.down:
            return
        ours = set(self._ours)
        try:
            if ours:
                value = json.dumps(sorted(str(s) for s in ours))
                await self._client.set(self._key, value, px=int(self.ttl_s * 1000))
            else:
                await self._client.delete(self._key)
        except (RedisError, OSError) as exc:
            self._written = None
            self._outage.failed(exc)
            return
        self._outage.succeeded()
        self._written, self._written_at = ours, time.monotonic()

    async def all_held(self) -> set[uuid.UUID] | None:
        if self._outage.down:
            return None
        found = set(self._ours)
        try:
            keys = [key async for key in self._client.scan_iter(match=self._pattern, count=500)]
            values = await self._client.mget(keys) if keys else []
        except (RedisError, OSError) as exc:
            self._outage.failed(exc)
            return None
        for value in values:
            try:
                found.update(uuid.UUID(s) for s in json.loads(value or "[]"))
            except (TypeError, ValueError):
                continue
        return found


def make_holdings(
    client: redis.Redis | None, replica_id: str, *, prefix: str, ttl_s: float
) -> SessionHoldings:
    """Shared through Redis when there is a client (`STEWARD_REDIS_URL`), else this process's."""
    if client is None:
        return SessionHoldings()
    return RedisSessionHoldings(client, replica_id, prefix=prefix, ttl_s=ttl_s)
