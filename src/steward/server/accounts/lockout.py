"""Lock-out with back-off, per account and per source address, kept in the database so that
every replica sees it. An account that does not exist is counted like one that does."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from steward.server.accounts.models import LoginFailure
from steward.server.accounts.principal import utcnow
from steward.server.errors import RateLimited


@dataclass(frozen=True, slots=True)
class Rule:
    threshold: int  # failures before the first lock
    base_s: float  # first lock; each further failure doubles it
    max_s: float
    forget_after_s: float  # a quiet period that clears the count


ACCOUNT = Rule(threshold=5, base_s=30, max_s=15 * 60, forget_after_s=30 * 60)
ADDRESS = Rule(threshold=30, base_s=60, max_s=60 * 60, forget_after_s=30 * 60)
SECOND_FACTOR = Rule(threshold=5, base_s=30, max_s=15 * 60, forget_after_s=30 * 60)


def account_key(tenant: str, email: str) -> str:
    return f"account:{tenant.strip().lower()}/{email.strip().lower()}"[:320]


def address_key(address: str) -> str:
    return f"address:{address}"[:320]


def second_factor_key(user_id: object) -> str:
    return f"mfa:{user_id}"


def lock_seconds(rule: Rule, failures: int) -> float:
    if failures < rule.threshold:
        return 0.0
    return min(rule.max_s, rule.base_s * 2 ** (failures - rule.threshold))


class Lockout:
    def __init__(self, system_sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = system_sessions

    async def check(self, keys: list[str]) -> None:
        """Raise `RateLimited` while any of these keys is locked."""
        now = utcnow()
        async with self._sessions() as session:
            rows = await session.scalars(
                select(LoginFailure).where(
                    LoginFailure.key.in_(keys), LoginFailure.locked_until > now
                )
            )
            until = max((row.locked_until for row in rows if row.locked_until), default=None)
        if until is not None:
            raise RateLimited(
                "too many failed attempts; try again later",
                retry_after_s=max(1, math.ceil((until - now).total_seconds())),
            )

    async def failed(self, keyed_rules: list[tuple[str, Rule]]) -> bool:
        """Count a failure against each key; True when this failure locked one of them."""
        now = utcnow()
        locked = False
        for attempt in range(3):
            try:
                async with self._sessions() as session:
                    for key, rule in keyed_rules:
                        locked |= await _count(session, key, rule, now)
                    await session.commit()
                return locked
            except IntegrityError:  # two first failures at once: count again
                locked = False
                if attempt == 2:
                    raise
        return locked

    async def succeeded(self, keys: list[str]) -> None:
        async with self._sessions() as session:
            await session.execute(delete(LoginFailure).where(LoginFailure.key.in_(keys)))
            await session.commit()


async def _count(session: AsyncSession, key: str, rule: Rule, now: datetime) -> bool:
    row = await session.get(LoginFailure, key, with_for_update=True)
    if row is None:
        row = LoginFailure(key=key, failures=0, last_failure_at=now)
        session.add(row)
    elif (now - row.last_failure_at).total_seconds() > rule.forget_after_s:
        row.failures = 0
    row.failures += 1
    row.last_failure_at = now
    seconds = lock_seconds(rule, row.failures)
    if seconds:
        row.locked_until = now + timedelta(seconds=seconds)
    await session.flush()
    return row.failures >= rule.threshold
