from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from steward.server.accounts.models import Role
from steward.server.accounts.permissions import Permission
from steward.server.accounts.scope import UserScope
from steward.server.accounts.service import SignInStatus

Code = Field(min_length=6, max_length=32)


class LoginRequest(BaseModel):
    # The tenant is the one of the host the request came to; when given, it must be that one.
    tenant: str | None = Field(default=None, min_length=1, max_length=63)
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=1024)


class TokenResponse(BaseModel):
    """`status` says what comes next: `ok` (use `access_token`), `mfa_required` (POST the code
    with `mfa_token` to /api/v1/auth/mfa) or `mfa_setup_required` (`access_token` only opens
    /api/v1/account/mfa/*)."""

    status: SignInStatus = SignInStatus.OK
    access_token: str | None = None
    mfa_token: str | None = None
    token_type: str = "bearer"
    expires_in: int = 0


class MfaLoginRequest(BaseModel):
    mfa_token: str = Field(min_length=1, max_length=2048)
    code: str = Code


class CodeRequest(BaseModel):
    code: str = Code


class PasswordChange(BaseModel):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


class MfaSetup(BaseModel):
    secret: str
    otpauth_uri: str
    qr_svg: str


class RecoveryCodes(BaseModel):
    """Shown once. Each works one time in place of a code from the app."""

    recovery_codes: list[str]
    access_token: str | None = None  # the session was rotated: use this one from now on


class AccountPublic(BaseModel):
    id: uuid.UUID
    email: str
    full_name: str
    role: Role
    permissions: list[Permission]
    scope: UserScope
    mfa_enabled: bool
    mfa_required: bool
    tenant: str
    timezone: str
    via: str  # "session" or "token"


class SessionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    channel: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    address: str
    user_agent: str
    current: bool = False


class TokenCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    permissions: list[Permission] = Field(min_length=1, max_length=len(Permission))
    expires_in_days: int = Field(default=90, ge=1, le=366)


class ApiTokenPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    prefix: str
    permissions: list[str]
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    last_used_address: str


class ApiTokenCreated(ApiTokenPublic):
    token: str  # shown once


class UserCreate(BaseModel):
    """Without `password` the user is invited: the answer carries a one-time sign-up link."""

    email: str = Field(min_length=3, max_length=254)
    password: str | None = Field(default=None, min_length=1, max_length=1024)
    role: Role = Role.VIEWER
    full_name: str = Field(default="", max_length=200)
    scope: UserScope | None = None


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    full_name: str | None = Field(default=None, max_length=200)
    scope: UserScope | None = None
    is_active: bool | None = None
    locale: str | None = Field(default=None, pattern=r"^(en|ko)$")


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    full_name: str
    role: Role
    is_active: bool
    scope: UserScope
    mfa_enabled: bool
    invited: bool = False
    created_at: datetime
    last_login_at: datetime | None


class Invitation(BaseModel):
    invite_url: str  # shown once: give it to the user
    invite_expires_at: datetime


class UserCreated(UserPublic):
    invitation: Invitation | None = None
