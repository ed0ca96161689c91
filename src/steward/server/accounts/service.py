"""Signing in and out, second factors, passwords. No HTTP here; callers own the transaction
(except where noted: failed attempts and audit records are kept even when the request fails)."""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from steward.server.accounts import lockout as lk
from steward.server.accounts import mfa
from steward.server.accounts.models import Role, SessionChannel, User, UserSession
from steward.server.accounts.policy import SecuritySettings, security_settings
from steward.server.accounts.principal import Principal, utcnow
from steward.server.accounts.security import (
    AccessClaims,
    MfaChallenge,
    decode_mfa_challenge,
    hash_password,
    issue_access_token,
    issue_mfa_challenge,
    verify_password,
)
from steward.server.accounts.sessions import new_session, principal_of, revoke_all, rotate
from steward.server.audit.auditor import Auditor
from steward.server.db.tenant_filter import bind_tenant
from steward.server.errors import Conflict, InvalidInput, PermissionDenied, Unauthorized
from steward.server.settings import Settings
from steward.server.tenancy.models import Tenant, TenantStatus

__all__ = ["Principal", "SignIn", "SignInStatus", "sign_in"]

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}$")
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
# The most common passwords of ten characters or more (breach corpora); refused outright.
_COMMON = frozenset(
    {
        "1234567890",
        "0123456789",
        "1q2w3e4r5t",
        "qwertyuiop",
        "password12",
        "password123",
        "password1234",
        "passw0rd123",
        "iloveyou12",
        "qwerty1234",
        "qwerty12345",
        "1qaz2wsx3edc",
        "abcdefghij",
        "administrator",
        "admin12345",
        "letmein123",
        "welcome123",
        "changeme123",
        "qwer1234!!",
        "p@ssw0rd123",
    }
)
_WRONG = "wrong tenant, e-mail or password"


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise InvalidInput("not a valid e-mail address", code="invalid_email")
    return email


def check_password_policy(
    password: str, *, email: str = "", min_length: int = MIN_PASSWORD_LENGTH
) -> None:
    """Long enough, not a well-known password, not one repeated character, not the e-mail."""
    if len(password) < min_length:
        raise InvalidInput(f"passwords need at least {min_length} characters", code="weak_password")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(
            f"passwords have at most {MAX_PASSWORD_LENGTH} characters", code="weak_password"
        )
    lowered = password.lower()
    local = email.split("@", 1)[0].lower()
    if (
        lowered in _COMMON
        or len(set(password)) < 4
        or (len(local) >= 4 and local in lowered)
        or lowered == email.lower()
    ):
        raise InvalidInput(
            "this password is too easy to guess; choose a longer, less common one",
            code="weak_password",
        )


async def create_user(
    session: AsyncSession,
    tenant: Tenant,
    email: str,
    password: str | None,
    role: Role,
    *,
    full_name: str = "",
) -> User:
    """A user with a first password, or with none (`None`: invited, see invitations.py)."""
    email = normalise_email(email)
    settings = security_settings(tenant.settings)
    if password is not None:
        check_password_policy(password, email=email, min_length=settings.password_min_length)
    existing = await session.scalar(
        select(User.id).where(User.tenant_id == tenant.id, User.email == email)
    )
    if existing is not None:
        raise Conflict(f"user {email} already exists", code="user_exists")
    password_hash = "" if password is None else await asyncio.to_thread(hash_password, password)
    user = User(
        tenant_id=tenant.id,
        email=email,
        full_name=full_name.strip()[:200],
        password_hash=password_hash,
        role=role,
        password_changed_at=None if password is None else utcnow(),
    )
    session.add(user)
    await session.flush()
    return user


async def authenticate(
    session: AsyncSession, tenant_slug: str, email: str, password: str
) -> tuple[Tenant, User]:
    """Check a login. Every failure looks the same to the caller (and costs the same time).

    Binds `session` to the tenant named (when there is one): the user is looked up in it."""
    tenant = await session.scalar(select(Tenant).where(Tenant.slug == tenant_slug.strip().lower()))
    user = None
    if tenant is not None:
        bind_tenant(session, tenant.id)
        user = await session.scalar(select(User).where(User.email == email.strip().lower()))
    # Argon2 takes a quarter of a second on purpose: keep it off the event loop, and end the
    # read-only transaction first so the database is not held meanwhile. The rows are detached
    # first so that they stay readable after it.
    for row in (tenant, user):
        if row is not None:
            session.expunge(row)
    await session.rollback()
    ok = await asyncio.to_thread(verify_password, user.password_hash if user else None, password)
    if (
        not ok
        or tenant is None
        or user is None
        or not user.is_active
        or tenant.status != TenantStatus.ACTIVE
    ):
        raise Unauthorized(_WRONG, code="invalid_credentials")
    return tenant, user


async def load_principal(session: AsyncSession, user_id: uuid.UUID) -> Principal:
    """The user `user_id` of the tenant `session` is bound to, if still allowed in (for work
    done on a user's behalf without a sign-in: schedules, the CLI)."""
    row = (
        await session.execute(
            select(User, Tenant).join(Tenant, Tenant.id == User.tenant_id).where(User.id == user_id)
        )
    ).first()
    if row is None:
        raise Unauthorized("the session is no longer valid", code="invalid_token")
    user, tenant = row
    if not user.is_active or tenant.status != TenantStatus.ACTIVE:
        raise Unauthorized("the account is disabled", code="account_disabled")
    return principal_of(user, tenant)


class SignInStatus(StrEnum):
    OK = "ok"  # signed in: `access_token`
    MFA_REQUIRED = "mfa_required"  # send a code with `mfa_token`
    MFA_SETUP_REQUIRED = "mfa_setup_required"  # signed in, but only to set up MFA


@dataclass(frozen=True, slots=True)
class SignIn:
    status: SignInStatus
    access_token: str | None = None
    mfa_token: str | None = None
    expires_in: int = 0
    session_id: uuid.UUID | None = None


def session_token(settings: Settings, tenant: Tenant, user_session: UserSession) -> SignIn:
    expires_in = max(1, round((user_session.expires_at - utcnow()).total_seconds()))
    claims = AccessClaims(
        user_id=user_session.user_id,
        tenant_id=tenant.id,
        tenant_slug=tenant.slug,
        session_id=user_session.id,
    )
    token = issue_access_token(settings.effective_secret_key, claims, expires_in)
    status = SignInStatus.MFA_SETUP_REQUIRED if user_session.mfa_setup_only else SignInStatus.OK
    return SignIn(status, access_token=token, expires_in=expires_in, session_id=user_session.id)


async def _start_session(
    session: AsyncSession,
    settings: Settings,
    tenant: Tenant,
    user: User,
    channel: SessionChannel,
    auditor: Auditor,
    *,
    with_mfa: bool,
) -> SignIn:
    policy = security_settings(tenant.settings)
    setup_only = not user.mfa_enabled and policy.mfa_required_for(user.role)
    user_session = new_session(
        user,
        policy,
        channel=channel,
        address=auditor.origin.address,
        user_agent=auditor.origin.user_agent,
        mfa_at=utcnow() if with_mfa else None,
        setup_only=setup_only,
    )
    session.add(user_session)
    user.last_login_at = utcnow()
    await session.commit()
    detail = {"channel": channel.value, "mfa": with_mfa, "session": str(user_session.id)}
    if setup_only:
        detail["mfa_setup_required"] = True
    await auditor.as_actor(f"user:{user.id}", user.email)("login.success", detail=detail)
    return session_token(settings, tenant, user_session)


async def sign_in(
    session: AsyncSession,
    lockout: lk.Lockout,
    settings: Settings,
    auditor: Auditor,
    *,
    tenant_slug: str,
    email: str,
    password: str,
    channel: SessionChannel,
) -> SignIn:
    """Password step of a login (API and console alike). Raises `RateLimited` while the account
    or address is locked out, `Unauthorized` (one error for every wrong credential)."""
    keys = [lk.account_key(tenant_slug, email), lk.address_key(auditor.origin.address)]
    named = auditor.as_actor("anonymous", email.strip().lower()[:254])
    try:
        await lockout.check(keys)
    except Exception:
        await named("login.failure", "blocked", risk="medium", detail={"reason": "locked_out"})
        raise
    try:
        if not (email.strip() and password):
            raise Unauthorized(_WRONG, code="invalid_credentials")
        tenant_row, user = await authenticate(session, tenant_slug, email, password)
    except Unauthorized:
        locked = await lockout.failed([(keys[0], lk.ACCOUNT), (keys[1], lk.ADDRESS)])
        await named("login.failure", "failure", risk="medium")
        if locked:
            await named("login.locked_out", "blocked", risk="high", detail={"keys": keys})
        raise
    await lockout.succeeded(keys[:1])
    session.add_all([tenant_row, user])
    if user.mfa_enabled:
        challenge = MfaChallenge(user.id, tenant_row.id, channel.value)
        token = issue_mfa_challenge(settings.effective_secret_key, challenge)
        return SignIn(SignInStatus.MFA_REQUIRED, mfa_token=token)
    return await _start_session(
        session, settings, tenant_row, user, channel, auditor, with_mfa=False
    )


async def _user_for_code(
    session: AsyncSession, lockout: lk.Lockout, user_id: uuid.UUID, auditor: Auditor, code: str
) -> User:
    """The user, once `code` proved their second factor (locked out after repeated misses).

    The caller calls `lockout.succeeded([second_factor_key(user_id)])` after its commit.
    (The lock-out and the audit log have their own transactions; the request's is ended
    before them so that SQLite's single connection is free.)"""
    key = lk.second_factor_key(user_id)
    await lockout.check([key])
    user = await session.scalar(select(User).where(User.id == user_id))
    if user is None or not user.is_active:
        raise Unauthorized("the session is no longer valid", code="invalid_token")
    if not mfa.verify_second_factor(user, code):
        email = user.email
        await session.rollback()
        await lockout.failed([(key, lk.SECOND_FACTOR)])
        await auditor.as_actor(f"user:{user_id}", email)("mfa.failure", "failure", risk="medium")
        raise Unauthorized("the code is not valid", code="invalid_code")
    return user


async def complete_mfa(
    session: AsyncSession,
    lockout: lk.Lockout,
    settings: Settings,
    auditor: Auditor,
    *,
    tenant_id: uuid.UUID,
    mfa_token: str,
    code: str,
) -> SignIn:
    """Second step of a login: a TOTP or recovery code for the challenge of the first."""
    challenge = decode_mfa_challenge(settings.effective_secret_key, mfa_token)
    if challenge.tenant_id != tenant_id:
        raise Unauthorized("the sign-in is not valid here", code="invalid_token")
    bind_tenant(session, tenant_id)
    user = await _user_for_code(session, lockout, challenge.user_id, auditor, code)
    tenant_row = await session.get(Tenant, tenant_id)
    assert tenant_row is not None
    result = await _start_session(
        session,
        settings,
        tenant_row,
        user,
        SessionChannel(challenge.channel),
        auditor,
        with_mfa=True,
    )
    await lockout.succeeded([lk.second_factor_key(user.id)])
    return result


async def step_up(
    session: AsyncSession,
    lockout: lk.Lockout,
    settings: Settings,
    auditor: Auditor,
    principal: Principal,
    code: str,
) -> SignIn:
    """Prove the second factor again; the session is rotated and marked fresh."""
    if principal.session_id is None:
        raise PermissionDenied("API tokens cannot step up; sign in", code="session_required")
    user = await _user_for_code(session, lockout, principal.user_id, auditor, code)
    current = await session.get(UserSession, principal.session_id)
    tenant = await session.get(Tenant, principal.tenant_id)
    assert current is not None and tenant is not None and user is not None
    fresh = await rotate(session, current, mfa_at=utcnow())
    await session.commit()
    await lockout.succeeded([lk.second_factor_key(principal.user_id)])
    await auditor("mfa.step_up", detail={"session": str(fresh.id)})
    return session_token(settings, tenant, fresh)


async def change_password(
    session: AsyncSession,
    principal: Principal,
    auditor: Auditor,
    *,
    current: str,
    new: str,
    policy: SecuritySettings,
) -> None:
    """Change one's own password; every other session of the user ends."""
    user = await session.scalar(select(User).where(User.id == principal.user_id))
    assert user is not None
    if not await asyncio.to_thread(verify_password, user.password_hash, current):
        await session.rollback()  # free the connection for the audit record (SQLite has one)
        await auditor("password.change", "failure", risk="medium")
        raise PermissionDenied("the current password is wrong", code="wrong_password")
    check_password_policy(new, email=user.email, min_length=policy.password_min_length)
    user.password_hash = await asyncio.to_thread(hash_password, new)
    user.password_changed_at = utcnow()
    ended = await revoke_all(session, user.id, "password_changed", keep=principal.session_id)
    await session.commit()
    await auditor("password.change", risk="medium", detail={"sessions_ended": ended})
