"""Invitations: a user created without a password gets a one-time link to choose one."""

from __future__ import annotations

import asyncio
import hmac
import secrets
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from steward.server.accounts.models import User
from steward.server.accounts.policy import SecuritySettings
from steward.server.accounts.principal import utcnow
from steward.server.accounts.security import hash_password
from steward.server.accounts.service import check_password_policy
from steward.server.accounts.tokens import token_hash
from steward.server.errors import NotFound

INVITE_PATH = "/invite/"
DEFAULT_HOURS = 72
_TOKEN = len(secrets.token_urlsafe(32))


def issue(user: User, hours: int = DEFAULT_HOURS) -> str:
    """A new link secret for `user` (any earlier link stops working). Shown once."""
    secret = secrets.token_urlsafe(32)
    user.invite_hash = token_hash(secret)
    user.invite_expires_at = utcnow() + timedelta(hours=hours)
    return secret


async def find(session: AsyncSession, secret: str) -> User:
    """The invited user of the bound tenant whose link this is, while it is good; else 404."""
    if len(secret) != _TOKEN:
        raise NotFound("this invitation is not valid", code="invitation_not_found")
    digest = token_hash(secret)
    user = await session.scalar(select(User).where(User.invite_hash == digest))
    if (
        user is None
        or user.invite_hash is None
        or not hmac.compare_digest(user.invite_hash, digest)
        or user.invite_expires_at is None
        or utcnow() >= user.invite_expires_at
        or not user.is_active
    ):
        raise NotFound("this invitation is not valid or has expired", code="invitation_not_found")
    return user


async def accept(user: User, password: str, policy: SecuritySettings) -> None:
    """Set the first password; the link is spent."""
    check_password_policy(password, email=user.email, min_length=policy.password_min_length)
    user.password_hash = await asyncio.to_thread(hash_password, password)
    user.password_changed_at = utcnow()
    user.invite_hash = None
    user.invite_expires_at = None
