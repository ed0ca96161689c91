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
        # An empty hash (an invited user who has not chosen a password) matches nothing.
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: uuid.UUID
    tenant_id: uuid.UUID
    tenant_slug: str
    session_id: uuid.UUID


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
    """A session's token. It is only as good as its session row (accounts/sessions.py)."""
    return _encode(
        secret,
        "access",
        claims.user_id,
        ttl_s,
        tid=str(claims.tenant_id),
        tenant=claims.tenant_slug,
        sid=str(claims.session_id),
    )


def decode_access_token(secret: str, token: str) -> AccessClaims:
    payload = _decode(secret, token, "access", ["tid", "tenant", "sid"])
    try:
        tenant_id = uuid.UUID(str(payload["tid"]))
        session_id = uuid.UUID(str(payload["sid"]))
    except ValueError:
        raise Unauthorized("the access token is not valid", code="invalid_token") from None
    return AccessClaims(
        user_id=uuid.UUID(payload["sub"]),
        tenant_id=tenant_id,
        tenant_slug=str(payload["tenant"]),
        session_id=session_id,
    )


MFA_CHALLENGE_TTL_S = 300


@dataclass(frozen=True, slots=True)
class MfaChallenge:
    user_id: uuid.UUID
    tenant_id: uuid.UUID
    channel: str


def issue_mfa_challenge(secret: str, challenge: MfaChallenge) -> str:
    """Proof that the password was right, good for a few minutes and for the second step only."""
    return _encode(
        secret,
        "mfa",
        challenge.user_id,
        MFA_CHALLENGE_TTL_S,
        tid=str(challenge.tenant_id),
        ch=challenge.channel,
    )


def decode_mfa_challenge(secret: str, token: str) -> MfaChallenge:
    payload = _decode(secret, token, "mfa", ["tid", "ch"])
    try:
        tenant_id = uuid.UUID(str(payload["tid"]))
    except ValueError:
        raise Unauthorized("the access token is not valid", code="invalid_token") from None
    return MfaChallenge(uuid.UUID(payload["sub"]), tenant_id, str(payload["ch"]))


def issue_platform_token(secret: str, admin_id: uuid.UUID, ttl_s: int) -> str:
    """A platform administrator's token: good on the platform host only, never for a tenant."""
    return _encode(secret, "platform", admin_id, ttl_s)


def decode_platform_token(secret: str, token: str) -> uuid.UUID:
    return uuid.UUID(_decode(secret, token, "platform", [])["sub"])
