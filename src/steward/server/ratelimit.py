"""Sliding-window rate limits: at most `limit` hits per key in any `window_s` seconds.

`SlidingWindowLimiter` counts in this process's memory (one server). `RedisWindowLimiter`
counts in Redis, so that every replica sees the same counts: a flood spread over the replicas
is stopped at the limit, not at the limit times the number of replicas. While Redis is down it
falls back to the counts of this process (the limit still holds per replica: it fails open to
memory, never to "unlimited"). Both answer the same questions through `RateLimiter`.
"""

from __future__ import annotations

import secrets
import time
from collections import defaultdict, deque
from typing import Protocol

import redis.asyncio as redis
from redis.exceptions import RedisError

from steward.server.bus.store import RedisOutage


class RateLimiter(Protocol):
    limit: int
    window_s: float

    async def exceeded(self, key: str) -> bool:
        """True while `key` has `limit` hits or more within the window."""
        ...

    async def hit(self, key: str) -> None: ...

    async def retry_after_s(self, key: str) -> int:
        """Whole seconds until `key` is below its limit again (0 if it is already)."""
        ...


class SlidingWindowLimiter:
    def __init__(self, limit: int, window_s: float, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window_s = window_s
        self._max_keys = max_keys
        self._hits: dict[str, deque[float]] = defaultdict(deque)

    def _recent(self, key: str) -> deque[float]:
        hits = self._hits[key]
        cutoff = time.monotonic() - self.window_s
        while hits and hits[0] <= cutoff:
            hits.popleft()
        return hits

    def count(self, key: str) -> int:
        return len(self._recent(key))

    def record(self, key: str) -> None:
        if len(self._hits) > self._max_keys:
            self._hits.clear()  # a flood of distinct keys must not grow memory without bound
        hits = self._recent(key)
        hits.append(time.monotonic())
        while len(hits) > self.limit:  # older hits no longer decide anything
            hits.popleft()

    def seconds_left(self, key: str) -> int:
        hits = self._recent(key)
        if len(hits) < self.limit:
            return 0
        # Below the limit again once the oldest of the last `limit` hits leaves the window.
        return max(1, int(hits[-self.limit] + self.window_s - time.monotonic()) + 1)

    async def exceeded(self, key: str) -> bool:
        return self.count(key) >= self.limit

    async def hit(self, key: str) -> None:
        self.record(key)

    async def retry_after_s(self, key: str) -> int:
        return self.seconds_left(key)


# KEYS[1]: a sorted set of hits (score = time in ms); ARGV: window ms, limit.
# Returns the ms until the key is below its limit, 0 if it is. Time is Redis's own clock, so
# replicas with drifting clocks still agree.
_CHECK = """
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local window, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
if n < limit then return 0 end
local oldest = redis.call('ZRANGE', KEYS[1], n - limit, n - limit, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
"""

# KEYS[1]: the sorted set; ARGV: window ms, limit, a unique member. Keeps only the newest
# `limit` hits (older ones decide nothing) and lets the key expire with its window.
_HIT = """
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local window, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(limit + 1))
redis.call('PEXPIRE', KEYS[1], window)
return 0
"""


class RedisWindowLimiter:
    """The same limit shared by every replica through Redis, under `<prefix>:<key>`."""

    def __init__(self, client: redis.Redis, prefix: str, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._prefix = prefix
        self._window_ms = max(1, int(window_s * 1000))
        self._check = client.register_script(_CHECK)
        self._hit = client.register_script(_HIT)
        self._outage = RedisOutage(f"rate limit {prefix}")
        # Every hit is counted here too, so that an outage starts from this process's counts.
        self.local = SlidingWindowLimiter(limit, window_s)

    def _key(self, key: str) -> str:
        return f"{self._prefix}:{key}"

    async def _ms_left(self, key: str) -> int | None:
        """Redis's answer, or None when Redis cannot give one."""
        if self._outage.down:
            return None
        try:
            left = await self._check(keys=[self._key(key)], args=[self._window_ms, self.limit])
        except (RedisError, OSError) as exc:
            self._outage.failed(exc)
            return None
        self._outage.succeeded()
        return int(left)

    async def exceeded(self, key: str) -> bool:
        left = await self._ms_left(key)
        return self.local.count(key) >= self.limit if left is None else left > 0

    async def hit(self, key: str) -> None:
        self.local.record(key)
        if self._outage.down:
            return
        member = f"{time.time_ns()}:{secrets.token_hex(4)}"
        try:
            await self._hit(keys=[self._key(key)], args=[self._window_ms, self.limit, member])
        except (RedisError, OSError) as exc:
            self._outage.failed(exc)
            return
        self._outage.succeeded()

    async def retry_after_s(self, key: str) -> int:
        left = await self._ms_left(key)
        if left is None:
            return self.local.seconds_left(key)
        return 0 if left <= 0 else max(1, -(-left // 1000))


def make_limiter(
    name: str, limit: int, window_s: float, client: redis.Redis | None, prefix: str = "steward"
) -> RateLimiter:
    """Shared through Redis when there is a client (`STEWARD_REDIS_URL`), else in memory."""
    if client is None:
        return SlidingWindowLimiter(limit, window_s)
    return RedisWindowLimiter(client, f"{prefix}:rate:{name}", limit, window_s)


class OncePerWindow:
    """Says yes to the first sighting of a key in each window (to record floods as one line)."""

    def __init__(self, window_s: float = 60.0, max_keys: int = 10_000) -> None:
        self.window_s = window_s
        self.max_keys = max_keys
        self._last: dict[object, float] = {}

    def first_in_window(self, key: object) -> bool:
        now = time.monotonic()
        if self._last.get(key, -self.window_s - 1) > now - self.window_s:
            return False
        if len(self._last) >= self.max_keys:
            self._last.clear()
        self._last[key] = now
        return True
