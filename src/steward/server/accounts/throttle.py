"""Login throttling: failed logins are counted per source address and per account.

Counted in Redis when the replicas share one (every replica sees every failure), else in this
process's memory.
"""

from __future__ import annotations

import redis.asyncio as redis

from steward.server.errors import RateLimited
from steward.server.ratelimit import make_limiter


class LoginThrottle:
    def __init__(
        self,
        per_address: int = 20,
        per_account: int = 10,
        window_s: float = 60.0,
        *,
        client: redis.Redis | None = None,
        prefix: str = "steward",
    ) -> None:
        self._by_address = make_limiter("login-address", per_address, window_s, client, prefix)
        self._by_account = make_limiter("login-account", per_account, window_s, client, prefix)

    @staticmethod
    def _account(tenant: str, email: str) -> str:
        return f"{tenant.strip().lower()}/{email.strip().lower()}"

    async def check(self, address: str, tenant: str, email: str) -> None:
        """Raise `RateLimited` while this address or this account has failed too often."""
        account = self._account(tenant, email)
        for limiter, key in ((self._by_address, address), (self._by_account, account)):
            if await limiter.exceeded(key):
                raise RateLimited(
                    "too many failed logins; try again later",
                    retry_after_s=await limiter.retry_after_s(key),
                )

    async def failed(self, address: str, tenant: str, email: str) -> None:
        await self._by_address.hit(address)
        await self._by_account.hit(self._account(tenant, email))
