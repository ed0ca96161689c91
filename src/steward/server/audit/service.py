"""Recording events. Each record is its own transaction, so a refused request keeps it."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from steward.server.audit.models import AuditEvent

log = logging.getLogger(__name__)


async def record(
    system_sessions: async_sessionmaker[AsyncSession],
    *,
    tenant_id: uuid.UUID,
    actor: str,
    action: str,
    result: str,
    address: str = "",
    target: str = "",
    risk: str = "low",
    detail: dict[str, Any] | None = None,
) -> None:
    log.info("audit %s %s by %s from %s: %s", action, result, actor, address, detail or {})
    async with system_sessions() as session:
        session.add(
            AuditEvent(
                tenant_id=tenant_id,
                actor=actor[:200],
                action=action,
                result=result,
                address=address[:64],
                target=target[:200],
                risk=risk,
                detail=detail or {},
            )
        )
        await session.commit()
