"""Recording events. Each record is its own transaction, so a refused request keeps it.

Events of one tenant form a hash chain (audit/chain.py). Appends are serialised per tenant:
by an in-process lock, and on PostgreSQL by locking the tenant's `audit_heads` row, so that
replicas append one after the other; `(tenant_id, seq)` is unique as the last guard.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from steward.server.audit import forward
from steward.server.audit.chain import GENESIS, entry_hash, json_safe
from steward.server.audit.models import AuditEvent, AuditHead
from steward.server.db.base import utcnow

log = logging.getLogger(__name__)

_locks: weakref.WeakValueDictionary[uuid.UUID, asyncio.Lock] = weakref.WeakValueDictionary()
_ATTEMPTS = 5


def _lock_for(tenant_id: uuid.UUID) -> asyncio.Lock:
    lock = _locks.get(tenant_id)
    if lock is None:
        lock = asyncio.Lock()
        _locks[tenant_id] = lock
    return lock


async def record(
    system_sessions: async_sessionmaker[AsyncSession],
    *,
    tenant_id: uuid.UUID,
    actor: str,
    action: str,
    result: str,
    actor_name: str = "",
    address: str = "",
    user_agent: str = "",
    target: str = "",
    device_id: uuid.UUID | None = None,
    risk: str = "low",
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to `tenant_id`'s chain and commit it."""
    log.info("audit %s %s by %s from %s: %s", action, result, actor, address, detail or {})
    values: dict[str, Any] = {
        "tenant_id": tenant_id,
        "actor": actor[:200],
        "actor_name": actor_name[:254],
        "action": action[:64],
        "result": result,
        "address": address[:64],
        "user_agent": user_agent[:300],
        "target": target[:200],
        "device_id": device_id,
        "risk": risk,
        "detail": json_safe(detail),
    }
    async with _lock_for(tenant_id):
        for attempt in range(_ATTEMPTS):
            try:
                async with system_sessions() as session:
                    event = await _append(session, values)
                    await session.commit()
                    forward.submit(event)  # a copy off the server, if configured; never blocks
                    return event
            except IntegrityError:
                # Another replica appended (or created the head) at the same moment.
                if attempt == _ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


async def _append(session: AsyncSession, values: dict[str, Any]) -> AuditEvent:
    tenant_id = values["tenant_id"]
    head = await session.scalar(
        select(AuditHead).where(AuditHead.tenant_id == tenant_id).with_for_update()
    )
    if head is None:
        head = AuditHead(tenant_id=tenant_id, seq=0, hash=GENESIS)
        session.add(head)
        await session.flush()
    at = utcnow()
    seq = head.seq + 1
    digest = entry_hash(prev_hash=head.hash, seq=seq, at=at, **values)
    event = AuditEvent(seq=seq, at=at, prev_hash=head.hash, hash=digest, **values)
    session.add(event)
    head.seq, head.hash, head.updated_at = seq, digest, at
    await session.flush()
    return event
