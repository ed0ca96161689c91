"""Enrollment PINs, agent credentials and agent authentication.

PINs are 6 digits, single use and short-lived; only a keyed hash is stored. Agent secrets are
random 256-bit tokens, so a fast hash (SHA-256) is enough and keeps 20,000 reconnects cheap.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from steward.protocol import EnrollRequest, EnrollResponse
from steward.server.db.base import utcnow
from steward.server.devices.models import AgentCredential, Device, DeviceStatus, EnrollmentPin
from steward.server.errors import Unauthorized
from steward.server.tenancy import service as tenancy
from steward.server.tenancy.models import DEFAULT_GROUP, Group, Tenant, TenantStatus

PIN_DIGITS = 6


def hash_pin(secret_key: str, pin: str) -> str:
    return hmac.new(secret_key.encode(), pin.encode(), hashlib.sha256).hexdigest()


def hash_agent_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_pin(
    session: AsyncSession,
    secret_key: str,
    tenant: Tenant,
    *,
    group_name: str | None,
    ttl_s: int,
    created_by: str,
) -> tuple[str, EnrollmentPin, Group]:
    """Make a PIN that no other live PIN shares. Returns the PIN in clear, once."""
    group = await tenancy.get_group(session, tenant.id, group_name or DEFAULT_GROUP)
    now = utcnow()
    for _ in range(20):
        pin = f"{secrets.randbelow(10**PIN_DIGITS):0{PIN_DIGITS}d}"
        pin_hash = hash_pin(secret_key, pin)
        clash = await session.scalar(
            select(EnrollmentPin.id).where(
                EnrollmentPin.pin_hash == pin_hash,
                EnrollmentPin.used_at.is_(None),
                EnrollmentPin.expires_at > now,
            )
        )
        if clash is None:
            break
    else:  # pragma: no cover - needs ~a million live PINs
        raise RuntimeError("could not find a free PIN")
    row = EnrollmentPin(
        tenant_id=tenant.id,
        group_id=group.id,
        pin_hash=pin_hash,
        expires_at=now + timedelta(seconds=ttl_s),
        created_by=created_by,
    )
    session.add(row)
    await session.flush()
    return pin, row, group


async def _claim_pin(session: AsyncSession, secret_key: str, pin: str) -> EnrollmentPin:
    now = utcnow()
    candidates = list(
        await session.scalars(
            select(EnrollmentPin)
            .where(EnrollmentPin.pin_hash == hash_pin(secret_key, pin.strip()))
            .order_by(EnrollmentPin.created_at.desc())
        )
    )
    live = [p for p in candidates if p.used_at is None and p.expires_at > now]
    if not live:
        if not candidates:
            raise Unauthorized("unknown PIN", code="pin_invalid")
        if candidates[0].used_at is not None:
            raise Unauthorized("this PIN has already been used", code="pin_used")
        raise Unauthorized("this PIN has expired", code="pin_expired")
    chosen = live[0]
    # Single use even under a race: only one UPDATE can see used_at still NULL.
    claimed = await session.execute(
        update(EnrollmentPin)
        .where(EnrollmentPin.id == chosen.id, EnrollmentPin.used_at.is_(None))
        .values(used_at=now)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise Unauthorized("this PIN has already been used", code="pin_used")
    return chosen


async def enroll(session: AsyncSession, secret_key: str, request: EnrollRequest) -> EnrollResponse:
    """Trade a PIN for agent credentials. Re-enrolling a machine updates its device."""
    pin = await _claim_pin(session, secret_key, request.pin)
    tenant = await session.get(Tenant, pin.tenant_id)
    if tenant is None or tenant.status != TenantStatus.ACTIVE:
        raise Unauthorized("the tenant is disabled", code="tenant_disabled")
    group_id = pin.group_id or (await tenancy.get_group(session, tenant.id, DEFAULT_GROUP)).id
    device = await session.scalar(
        select(Device).where(Device.tenant_id == tenant.id, Device.machine_id == request.machine_id)
    )
    now = utcnow()
    if device is None:
        device = Device(
            tenant_id=tenant.id,
            group_id=group_id,
            machine_id=request.machine_id,
            hostname=request.hostname,
            os_name=request.os_name,
            agent_version=request.agent_version,
            enrolled_at=now,
            disks=[],
            top_processes=[],
        )
        session.add(device)
        await session.flush()
        session.add(DeviceStatus(device_id=device.id, tenant_id=tenant.id, online=False))
    else:
        device.hostname = request.hostname
        device.agent_version = request.agent_version or device.agent_version
        device.os_name = request.os_name or device.os_name
        device.group_id = group_id if pin.group_id else device.group_id
        device.enrolled_at = now
        await session.execute(
            update(AgentCredential)
            .where(AgentCredential.device_id == device.id, AgentCredential.revoked_at.is_(None))
            .values(revoked_at=now)
        )
    secret = secrets.token_urlsafe(32)
    credential = AgentCredential(
        tenant_id=tenant.id, device_id=device.id, secret_hash=hash_agent_secret(secret)
    )
    session.add(credential)
    pin.used_by_device_id = device.id
    await session.flush()
    return EnrollResponse(
        agent_id=str(credential.id),
        agent_secret=secret,
        device_id=str(device.id),
        tenant=tenant.slug,
    )


@dataclass(frozen=True, slots=True)
class AgentIdentity:
    agent_id: uuid.UUID
    device_id: uuid.UUID
    tenant_id: uuid.UUID
    hostname: str = ""
    agent_version: str = ""


def parse_agent_authorization(header: str | None) -> tuple[uuid.UUID, str]:
    """`Authorization: Agent <agent_id>:<secret>`."""
    scheme, _, value = (header or "").partition(" ")
    agent_id, _, secret = value.strip().partition(":")
    if scheme.lower() != "agent" or not agent_id or not secret or len(secret) > 256:
        raise Unauthorized("agent credentials are missing", code="agent_unauthorized")
    try:
        return uuid.UUID(agent_id), secret
    except ValueError:
        raise Unauthorized("agent credentials are malformed", code="agent_unauthorized") from None


async def authenticate_agent(session: AsyncSession, header: str | None) -> AgentIdentity:
    agent_id, secret = parse_agent_authorization(header)
    [outcome] = await authenticate_agents(session, [(agent_id, secret)])
    if isinstance(outcome, Unauthorized):
        raise outcome
    return outcome


async def authenticate_agents(
    session: AsyncSession, claims: list[tuple[uuid.UUID, str]]
) -> list[AgentIdentity | Unauthorized]:
    """Check many agents' credentials with one query (agents connecting at the same moment);
    for each claim its identity or the refusal, in order."""
    rows = {
        row[0].id: row
        for row in await session.execute(
            select(AgentCredential, Tenant.status, Device.hostname, Device.agent_version)
            .join(Tenant, Tenant.id == AgentCredential.tenant_id)
            .join(Device, Device.id == AgentCredential.device_id)
            .where(AgentCredential.id.in_({agent_id for agent_id, _ in claims}))
        )
    }
    return [_identity(rows.get(agent_id), secret) for agent_id, secret in claims]


def _identity(row: Any, secret: str) -> AgentIdentity | Unauthorized:
    if row is None:
        hmac.compare_digest(hash_agent_secret(secret), "0" * 64)  # same work either way
        return Unauthorized("agent credentials are not valid", code="agent_unauthorized")
    credential, tenant_status, hostname, agent_version = row
    if (
        not hmac.compare_digest(credential.secret_hash, hash_agent_secret(secret))
        or credential.revoked_at is not None
    ):
        return Unauthorized("agent credentials are not valid", code="agent_unauthorized")
    if tenant_status != TenantStatus.ACTIVE:
        return Unauthorized("the tenant is disabled", code="tenant_disabled")
    return AgentIdentity(
        agent_id=credential.id,
        device_id=credential.device_id,
        tenant_id=credential.tenant_id,
        hostname=hostname,
        agent_version=agent_version,
    )
