"""Password hashing (Argon2id) and access tokens (JWT with a tenant claim)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from steward.server.errors import Unauthorized

_hasher = PasswordHasher()  # Argon2id with the library's current recommended parameters
# Verified against when the user does not exist, so both failures cost the same time.
_DUMMY_HASH = _hasher.hash("steward-timing-equaliser")
_ALGORITHM = "HS256"
_ISSUER = "steward"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: uuid.UUID
    tenant_id: uuid.UUID
    tenant_slug: str
    role: str


def issue_access_token(secret: str, claims: AccessClaims, ttl_s: int) -> str:
    now = datetime.now(UTC)
    payload = {
        "iss": _ISSUER,
        "sub": str(claims.user_id),
        "tid": str(claims.tenant_id),
        "tenant": claims.tenant_slug,
        "role": claims.role,
        "iat": now,
        "exp": now + timedelta(seconds=ttl_s),
        "typ": "access",
    }
    return jwt.encode(payload, secret, algorithm=_ALGORITHM)


def decode_access_token(secret: str, token: str) -> AccessClaims:
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[_ALGORITHM],
            issuer=_ISSUER,
            options={"require": ["exp", "sub", "tid", "tenant", "typ"]},
        )
        if payload["typ"] != "access":
            raise jwt.InvalidTokenError("wrong token type")
        return AccessClaims(
            user_id=uuid.UUID(payload["sub"]),
            tenant_id=uuid.UUID(payload["tid"]),
            tenant_slug=str(payload["tenant"]),
            role=str(payload.get("role", "")),
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("the access token has expired", code="token_expired") from None
    except (jwt.InvalidTokenError, ValueError):
        raise Unauthorized("the access token is not valid", code="invalid_token") from None


def issue_platform_token(secret: str, admin_id: uuid.UUID, ttl_s: int) -> str:
    """A platform administrator's token: good on the platform host only, never for a tenant."""
    now = datetime.now(UTC)
    payload = {
        "iss": _ISSUER,
        "sub": str(admin_id),
        "iat": now,
        "exp": now + timedelta(seconds=ttl_s),
        "typ": "platform",
    }
    return jwt.encode(payload, secret, algorithm=_ALGORITHM)


def decode_platform_token(secret: str, token: str) -> uuid.UUID:
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[_ALGORITHM],
            issuer=_ISSUER,
            options={"require": ["exp", "sub", "typ"]},
        )
        if payload["typ"] != "platform":
            raise jwt.InvalidTokenError("wrong token type")
        return uuid.UUID(payload["sub"])
    except jwt.ExpiredSignatureError:
        raise Unauthorized("the access token has expired", code="token_expired") from None
    except (jwt.InvalidTokenError, ValueError):
        raise Unauthorized("the access token is not valid", code="invalid_token") from None
