"""Changes to accounts, users and the tenant's security settings, each done, committed and
audited: the one implementation behind the API routes (`account_routes.py`, `admin_routes.py`)
and the console pages.

Failures are recorded after the request's transaction ended: the audit log writes in its own
transaction, and on SQLite the pool's single connection must be free for it.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from steward.server.accounts import invitations, mfa, sessions, tokens, users
from steward.server.accounts.models import Role, User, UserSession
from steward.server.accounts.policy import SecuritySettings, address_allowed, security_settings
from steward.server.accounts.principal import Principal, utcnow
from steward.server.accounts.schemas import MfaSetup, RecoveryCodes
from steward.server.accounts.scope import UserScope
from steward.server.accounts.service import create_user as create_user_row
from steward.server.accounts.service import session_token
from steward.server.audit.auditor import Auditor
from steward.server.errors import Conflict, PermissionDenied, Unauthorized
from steward.server.runtime import Runtime
from steward.server.tenancy.hosts import announce_tenant_change
from steward.server.tenancy.models import Tenant


async def user_and_tenant(session: AsyncSession, user_id: uuid.UUID) -> tuple[User, Tenant]:
    row = (
        await session.execute(
            select(User, Tenant).join(Tenant, Tenant.id == User.tenant_id).where(User.id == user_id)
        )
    ).first()
    assert row is not None
    return row[0], row[1]


def session_only(principal: Principal) -> uuid.UUID:
    if principal.session_id is None:
        raise PermissionDenied("sign in to manage your account", code="session_required")
    return principal.session_id


# ---- one's own account -----------------------------------------------------------------------


async def start_mfa_setup(
    session: AsyncSession, principal: Principal, *, reuse_pending: bool = False
) -> MfaSetup:
    """A pending authenticator secret to scan (the one already pending, with `reuse_pending`:
    reloading the set-up page keeps showing the same QR code)."""
    session_only(principal)
    user, tenant = await user_and_tenant(session, principal.user_id)
    if user.mfa_enabled:
        raise Conflict("two-factor authentication is already on", code="mfa_already_enabled")
    if user.mfa_pending_secret is None or not reuse_pending:
        user.mfa_pending_secret = mfa.new_secret()
    uri = mfa.provisioning_uri(user.mfa_pending_secret, user.email, tenant.slug)
    await session.commit()
    return MfaSetup(secret=user.mfa_pending_secret, otpauth_uri=uri, qr_svg=mfa.qr_svg(uri))


async def confirm_mfa(
    session: AsyncSession, runtime: Runtime, auditor: Auditor, principal: Principal, code: str
) -> RecoveryCodes:
    """The first code turns the pending secret on; the session is rotated (new token)."""
    session_id = session_only(principal)
    user, tenant = await user_and_tenant(session, principal.user_id)
    if user.mfa_pending_secret is None:
        raise Conflict("start the set-up first", code="mfa_not_started")
    step = mfa.check_code(user.mfa_pending_secret, code, None)
    if step is None:
        await session.rollback()  # free the connection for the audit record
        await auditor("mfa.enable", "failure", risk="medium")
        raise Unauthorized("the code is not valid", code="invalid_code")
    codes = mfa.enable(user, step)
    current = await session.get(UserSession, session_id)
    assert current is not None
    fresh = await sessions.rotate(session, current, mfa_at=utcnow())
    await session.commit()
    await auditor("mfa.enable", risk="medium")
    token = session_token(runtime.settings, tenant, fresh).access_token
    return RecoveryCodes(recovery_codes=codes, access_token=token)


async def disable_mfa(
    session: AsyncSession, auditor: Auditor, principal: Principal, code: str
) -> None:
    """Turn MFA off (with a current code); refused where the tenant requires it."""
    session_only(principal)
    user, tenant = await user_and_tenant(session, principal.user_id)
    if security_settings(tenant.settings).mfa_required_for(user.role):
        raise Conflict("your organisation requires two-factor authentication", code="mfa_required")
    if not mfa.verify_second_factor(user, code):
        await session.rollback()  # free the connection for the audit record
        await auditor("mfa.disable", "failure", risk="medium")
        raise Unauthorized("the code is not valid", code="invalid_code")
    mfa.disable(user)
    await session.commit()
    await auditor("mfa.disable", risk="high")


async def new_recovery_codes(
    session: AsyncSession, auditor: Auditor, principal: Principal, code: str
) -> list[str]:
    """New recovery codes (the old ones stop working); needs a current code."""
    session_only(principal)
    user, _ = await user_and_tenant(session, principal.user_id)
    if not mfa.verify_second_factor(user, code):
        await session.rollback()  # free the connection for the audit record
        await auditor("mfa.recovery_codes", "failure", risk="medium")
        raise Unauthorized("the code is not valid", code="invalid_code")
    codes = mfa.new_recovery_codes()
    user.mfa_recovery_hashes = [mfa.recovery_hash(c) for c in codes]
    await session.commit()
    await auditor("mfa.recovery_codes", risk="medium")
    return codes


async def revoke_own_session(
    session: AsyncSession, auditor: Auditor, principal: Principal, session_id: uuid.UUID
) -> None:
    await sessions.revoke_session(session, principal.user_id, session_id, "revoked")
    await session.commit()
    await auditor("session.revoke", target=f"session:{session_id}")


async def log_out_everywhere(session: AsyncSession, auditor: Auditor, principal: Principal) -> int:
    """End every session of the principal's user, the current one included."""
    ended = await sessions.revoke_all(session, principal.user_id, "log_out_everywhere")
    await session.commit()
    await auditor("session.revoke_all", risk="medium", detail={"sessions_ended": ended})
    return ended


async def create_token(
    session: AsyncSession,
    auditor: Auditor,
    principal: Principal,
    *,
    name: str,
    permissions: list[str],
    expires_in_days: int,
) -> tokens.IssuedToken:
    """A token limited to permissions the principal holds. Its secret is shown once."""
    session_only(principal)
    issued = await tokens.create_token(
        session, principal, name=name, permissions=permissions, expires_in_days=expires_in_days
    )
    await session.commit()
    await auditor(
        "token.create",
        risk="medium",
        target=f"token:{issued.token.id}",
        detail={"name": issued.token.name, "permissions": issued.token.permissions},
    )
    return issued


async def revoke_token(
    session: AsyncSession, auditor: Auditor, principal: Principal, token_id: uuid.UUID
) -> None:
    token = await tokens.revoke_token(session, principal.user_id, token_id)
    await session.commit()
    await auditor("token.revoke", target=f"token:{token_id}", detail={"name": token.name})


# ---- the tenant's users (user.manage) --------------------------------------------------------


async def create_user(
    session: AsyncSession,
    auditor: Auditor,
    tenant: Tenant,
    *,
    email: str,
    password: str,
    role: Role,
    full_name: str = "",
    scope: UserScope | None = None,
) -> User:
    if scope is not None:
        await users.check_scope(session, scope)
    user = await create_user_row(session, tenant, email, password, role, full_name=full_name)
    if scope is not None:
        user.scope = scope.model_dump(mode="json", exclude_defaults=True)
    await session.commit()
    await auditor(
        "user.create",
        risk="medium",
        target=f"user:{user.id}",
        detail={"email": user.email, "role": user.role, "scope": user.scope},
    )
    return user


async def invite_user(
    session: AsyncSession,
    auditor: Auditor,
    tenant: Tenant,
    *,
    email: str,
    role: Role,
    full_name: str = "",
    scope: UserScope | None = None,
    hours: int = invitations.DEFAULT_HOURS,
) -> tuple[User, str]:
    """A user without a password, and the secret of their one-time sign-up link."""
    if scope is not None:
        await users.check_scope(session, scope)
    user = await create_user_row(session, tenant, email, None, role, full_name=full_name)
    if scope is not None:
        user.scope = scope.model_dump(mode="json", exclude_defaults=True)
    secret = invitations.issue(user, hours)
    await session.commit()
    await auditor(
        "user.invite",
        risk="medium",
        target=f"user:{user.id}",
        detail={"email": user.email, "role": user.role, "scope": user.scope},
    )
    return user, secret


async def reinvite(session: AsyncSession, auditor: Auditor, user: User) -> str:
    """A new sign-up link for a user who has not chosen a password yet (the old one ends)."""
    if not user.invited:
        raise Conflict("this user has already signed up", code="already_signed_up")
    secret = invitations.issue(user)
    await session.commit()
    await auditor(
        "user.invite",
        risk="medium",
        target=f"user:{user.id}",
        detail={"email": user.email, "again": True},
    )
    return secret


async def update_user(
    session: AsyncSession,
    auditor: Auditor,
    actor: Principal,
    user: User,
    changes: dict[str, Any],
) -> dict[str, Any]:
    """Role, scope, name, language or activity; what changed is audited."""
    changed = await users.update_user(session, actor, user, changes)
    await session.commit()
    if changed:
        risky = {"role", "scope", "is_active"} & changed.keys()
        await auditor(
            "user.update",
            risk="high" if risky else "low",
            target=f"user:{user.id}",
            detail={"email": user.email, "changes": changed},
        )
    return changed


async def reset_mfa(session: AsyncSession, auditor: Auditor, user: User) -> None:
    ended = await users.reset_mfa(session, user)
    await session.commit()
    await auditor(
        "mfa.reset",
        risk="high",
        target=f"user:{user.id}",
        detail={"email": user.email, "sessions_ended": ended},
    )


async def sign_user_out(session: AsyncSession, auditor: Auditor, user: User) -> None:
    ended = await sessions.revoke_all(session, user.id, "revoked_by_admin")
    await session.commit()
    await auditor(
        "session.revoke_all",
        risk="medium",
        target=f"user:{user.id}",
        detail={"email": user.email, "sessions_ended": ended},
    )


# ---- the tenant's security settings (tenant.manage) ------------------------------------------


async def save_security_settings(
    session: AsyncSession,
    auditor: Auditor,
    runtime: Runtime,
    tenant: Tenant,
    settings: SecuritySettings,
    *,
    address: str,
) -> None:
    """Refused (`would_lock_out`) when the allow-list would shut out the address in use."""
    if not address_allowed(address, settings.ip_allowlist):
        raise Conflict(
            "the allow-list would lock you out: add the address you are using",
            code="would_lock_out",
        )
    before = security_settings(tenant.settings).model_dump(mode="json")
    after = settings.model_dump(mode="json")
    tenant.settings = {**(tenant.settings or {}), "security": after}
    await session.commit()
    await announce_tenant_change(runtime.bus, tenant.slug)
    changes = {k: [before[k], after[k]] for k in after if before.get(k) != after[k]}
    if changes:
        await auditor("settings.security", risk="high", detail={"changes": changes})
