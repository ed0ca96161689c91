"""Redis as a shared store for the replicas (presence, rate limits), beside the bus.

Everything kept there can be lost without harm: keys expire, and a replica that cannot reach
Redis answers from what it holds in memory. `RedisOutage` keeps one outage from costing a
timeout per request and from filling the log.
"""

from __future__ import annotations

import logging
import time

import redis.asyncio as redis

log = logging.getLogger(__name__)

TIMEOUT_S = 1.0  # a request never waits longer than this on Redis
RETRY_AFTER_S = 2.0  # after a failure, Redis is left alone this long


def redis_client(url: str) -> redis.Redis:
    """A client (a connection pool, connected on first use) with short timeouts."""
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=TIMEOUT_S,
        socket_timeout=TIMEOUT_S,
        health_check_interval=10,
    )


class RedisOutage:
    """Remembers that Redis failed: callers skip it for `retry_after_s`, then try again.
    The first failure of an outage is logged as a warning, the recovery once as info."""

    def __init__(self, what: str, retry_after_s: float = RETRY_AFTER_S) -> None:
        self.what = what
        self.retry_after_s = retry_after_s
        self._down_until = 0.0
        self._down = False

    @property
    def down(self) -> bool:
        """True while Redis is known to be down and not due for another try."""
        return time.monotonic() < self._down_until

    def failed(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + self.retry_after_s
        if not self._down:
            self._down = True
            log.warning("%s: redis unavailable (%s); using this process's memory", self.what, exc)

    def succeeded(self) -> None:
        if self._down:
            self._down = False
            log.info("%s: redis is back", self.what)
