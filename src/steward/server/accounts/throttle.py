"""Login throttling: failed logins are counted per source address and per account."""

from __future__ import annotations

from steward.server.errors import RateLimited
from steward.server.ratelimit import SlidingWindowLimiter


class LoginThrottle:
    def __init__(self, per_address: int = 20, per_account: int = 10, window_s: float = 60.0):
        self._by_address = SlidingWindowLimiter(per_address, window_s)
        self._by_account = SlidingWindowLimiter(per_account, window_s)

    @staticmethod
    def _account(tenant: str, email: str) -> str:
        return f"{tenant.strip().lower()}/{email.strip().lower()}"

    def check(self, address: str, tenant: str, email: str) -> None:
        """Raise `RateLimited` while this address or this account has failed too often."""
        account = self._account(tenant, email)
        for limiter, key in ((self._by_address, address), (self._by_account, account)):
            if limiter.exceeded(key):
                raise RateLimited(
                    "too many failed logins; try again later",
                    retry_after_s=limiter.retry_after_s(key),
                )

    def failed(self, address: str, tenant: str, email: str) -> None:
        self._by_address.hit(address)
        self._by_account.hit(self._account(tenant, email))
