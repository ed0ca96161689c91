"""TOTP second factor (RFC 6238 via pyotp) and one-time recovery codes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

import pyotp
import segno

from steward.server.accounts.models import User
from steward.server.accounts.principal import utcnow

ISSUER = "Steward"
RECOVERY_CODES = 10
_STEP_S = 30
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, email: str, tenant_slug: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=f"{email} ({tenant_slug})", issuer_name=ISSUER)


def qr_svg(uri: str) -> str:
    """The URI as an inline SVG QR code (no external service sees the secret)."""
    svg: str = segno.make(uri, error="m").svg_inline(scale=4, border=2)
    return svg


def _matching_step(secret: str, code: str, at: float) -> int | None:
    """The time step this code belongs to (now, or one step either side for clock drift)."""
    code = code.strip().replace(" ", "")
    if not (len(code) == 6 and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret)
    current = int(at // _STEP_S)
    for step in (current, current - 1, current + 1):
        if hmac.compare_digest(totp.at(step * _STEP_S), code):
            return step
    return None


def check_code(secret: str, code: str, last_step: int | None) -> int | None:
    """The step of a valid, not yet used code; None when wrong or replayed."""
    step = _matching_step(secret, code, time.time())
    if step is None or (last_step is not None and step <= last_step):
        return None
    return step


def new_recovery_codes() -> list[str]:
    def one() -> str:
        raw = "".join(secrets.choice(_ALPHABET) for _ in range(10))
        return f"{raw[:5]}-{raw[5:]}"

    return [one() for _ in range(RECOVERY_CODES)]


def recovery_hash(code: str) -> str:
    normalised = code.strip().lower().replace("-", "").replace(" ", "")
    return hashlib.sha256(normalised.encode()).hexdigest()


def verify_second_factor(user: User, code: str) -> bool:
    """A TOTP code (not replayed) or an unused recovery code, which is then spent."""
    if user.mfa_secret is None:
        return False
    step = check_code(user.mfa_secret, code, user.mfa_last_step)
    if step is not None:
        user.mfa_last_step = step
        return True
    digest = recovery_hash(code)
    remaining = list(user.mfa_recovery_hashes or [])
    for stored in remaining:
        if hmac.compare_digest(stored, digest):
            remaining.remove(stored)
            user.mfa_recovery_hashes = remaining
            return True
    return False


def enable(user: User, step: int) -> list[str]:
    """Turn the pending secret into the user's second factor; returns new recovery codes."""
    assert user.mfa_pending_secret is not None
    codes = new_recovery_codes()
    user.mfa_secret = user.mfa_pending_secret
    user.mfa_pending_secret = None
    user.mfa_last_step = step
    user.mfa_enabled_at = utcnow()
    user.mfa_recovery_hashes = [recovery_hash(c) for c in codes]
    return codes


def disable(user: User) -> None:
    user.mfa_secret = None
    user.mfa_pending_secret = None
    user.mfa_last_step = None
    user.mfa_enabled_at = None
    user.mfa_recovery_hashes = []
