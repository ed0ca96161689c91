from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from steward.server.db.base import Base, CreatedAt, TenantOwned, UTCDateTime, UUIDPrimaryKey, utcnow


class Role(StrEnum):
    ADMIN = "ADMIN"
    PM = "PM"
    ENGINEER = "ENGINEER"
    DEPLOY_ENGINEER = "DEPLOY_ENGINEER"
    VIEWER = "VIEWER"
    CUSTOMER = "CUSTOMER"


class User(UUIDPrimaryKey, CreatedAt, TenantOwned, Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("tenant_id", "email"),)

    email: Mapped[str] = mapped_column(String(254))
    full_name: Mapped[str] = mapped_column(String(200), default="", server_default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(32), default=Role.VIEWER)
    locale: Mapped[str | None] = mapped_column(String(8), nullable=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Limits on top of the role (accounts/scope.py); {} means none.
    scope: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, server_default="{}")
    # TOTP: the confirmed secret, one being set up, the last time step used (no replays), and
    # the SHA-256 of the unused recovery codes.
    mfa_secret: Mapped[str | None] = mapped_column(String(64), nullable=True)
    mfa_pending_secret: Mapped[str | None] = mapped_column(String(64), nullable=True)
    mfa_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    mfa_last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    mfa_recovery_hashes: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # An invitation: the SHA-256 of the link's secret, good until it expires or is used.
    invite_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    invite_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    @property
    def mfa_enabled(self) -> bool:
        return self.mfa_secret is not None

    @property
    def invited(self) -> bool:
        """Invited and not yet signed up: no password of their own."""
        return not self.password_hash


class SessionChannel(StrEnum):
    CONSOLE = "console"
    API = "api"


class UserSession(UUIDPrimaryKey, CreatedAt, TenantOwned, Base):
    """One sign-in. Its id is in the access token; revoking the row ends the token."""

    __tablename__ = "user_sessions"
    __table_args__ = (Index("ix_user_sessions_tenant_user", "tenant_id", "user_id"),)

    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16), default=SessionChannel.API)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_reason: Mapped[str] = mapped_column(String(32), default="")
    address: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(300), default="")
    # When the user last proved a second factor in this session (step-up looks at it).
    mfa_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The tenant requires MFA and the user has none yet: only MFA set-up is allowed.
    mfa_setup_only: Mapped[bool] = mapped_column(Boolean, default=False)


class ApiToken(UUIDPrimaryKey, CreatedAt, TenantOwned, Base):
    """A named, expiring credential for scripts. Only the SHA-256 of the secret is kept."""

    __tablename__ = "api_tokens"
    __table_args__ = (
        Index("ix_api_tokens_tenant_user", "tenant_id", "user_id"),
        # Looked up by hash before the tenant is known (then checked against the host).
        Index("ix_api_tokens_token_hash", "token_hash", unique=True),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64))
    permissions: Mapped[list[str]] = mapped_column(JSON, default=list)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_address: Mapped[str] = mapped_column(String(64), default="")
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class LoginFailure(Base):
    """Failed sign-ins counted per key (`address:<ip>` or `account:<tenant>/<e-mail>`).

    Not tenant-owned: an unknown account is counted the same as a real one."""

    __tablename__ = "login_failures"

    key: Mapped[str] = mapped_column(String(320), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
