"""Password hashing (Argon2id) and access tokens (JWT with a tenant claim)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

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


def _encode(secret: str, token_type: str, subject: uuid.UUID, ttl_s: int, **claims: str) -> str:
    now = datetime.now(UTC)
    payload = {
        "iss": _ISSUER,
        "sub": str(subject),
        "iat": now,
        "exp": now + timedelta(seconds=ttl_s),
        "typ": token_type,
        **claims,
    }
    return jwt.encode(payload, secret, algorithm=_ALGORITHM)


def _decode(secret: str, token: str, token_type: str, required: list[str]) -> dict[str, Any]:
    """The claims of a valid, unexpired token of this type, else `Unauthorized`."""
    try:
        payload: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[_ALGORITHM],
            issuer=_ISSUER,
            options={"require": ["exp", "sub", "typ", *required]},
        )
        if payload["typ"] != token_type:
            raise jwt.InvalidTokenError("wrong token type")
        uuid.UUID(payload["sub"])
        return payload
    except jwt.ExpiredSignatureError:
        raise Unauthorized("the access token has expired", code="token_expired") from None
    except (jwt.InvalidTokenError, ValueError, TypeError):
        raise Unauthorized("the access token is not valid", code="invalid_token") from None


def issue_access_token(secret: str, claims: AccessClaims, ttl_s: int) -> str:
    return _encode(
        secret,
        "access",
        claims.user_id,
        ttl_s,
        tid=str(claims.tenant_id),
        tenant=claims.tenant_slug,
        role=claims.role,
    )


def decode_access_token(secret: str, token: str) -> AccessClaims:
    payload = _decode(secret, token, "access", ["tid", "tenant"])
    try:
        tenant_id = uuid.UUID(str(payload["tid"]))
    except ValueError:
        raise Unauthorized("the access token is not valid", code="invalid_token") from None
    return AccessClaims(
        user_id=uuid.UUID(payload["sub"]),
        tenant_id=tenant_id,
        tenant_slug=str(payload["tenant"]),
        role=str(payload.get("role", "")),
    )


def issue_platform_token(secret: str, admin_id: uuid.UUID, ttl_s: int) -> str:
    """A platform administrator's token: good on the platform host only, never for a tenant."""
    return _encode(secret, "platform", admin_id, ttl_s)


def decode_platform_token(secret: str, token: str) -> uuid.UUID:
    return uuid.UUID(_decode(secret, token, "platform", [])["sub"])
