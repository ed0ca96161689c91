"""Recording on behalf of one request: who, from where, in which tenant."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from steward.server.audit.service import record


@dataclass(frozen=True, slots=True)
class Origin:
    address: str
    user_agent: str = ""


@dataclass(frozen=True, slots=True)
class Auditor:
    system_sessions: async_sessionmaker[AsyncSession]
    tenant_id: uuid.UUID
    actor: str
    actor_name: str
    origin: Origin

    async def __call__(
        self,
        action: str,
        result: str = "success",
        *,
        target: str = "",
        device_id: uuid.UUID | None = None,
        risk: str = "low",
        detail: dict[str, Any] | None = None,
    ) -> None:
        await record(
            self.system_sessions,
            tenant_id=self.tenant_id,
            actor=self.actor,
            actor_name=self.actor_name,
            action=action,
            result=result,
            address=self.origin.address,
            user_agent=self.origin.user_agent,
            target=target,
            device_id=device_id,
            risk=risk,
            detail=detail,
        )

    def as_actor(self, actor: str, actor_name: str) -> Auditor:
        return Auditor(self.system_sessions, self.tenant_id, actor, actor_name, self.origin)
