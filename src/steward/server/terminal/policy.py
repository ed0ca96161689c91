"""A tenant's terminal policy: read (defaults when unset) and update."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from steward.server.audit.auditor import Auditor
from steward.server.db.base import utcnow
from steward.server.terminal.models import TerminalPolicy
from steward.server.terminal.schemas import TerminalPolicyPublic, TerminalPolicyUpdate


async def get_policy(session: AsyncSession) -> TerminalPolicyPublic:
    """The bound tenant's policy (the defaults when it never set one)."""
    row = await session.scalar(select(TerminalPolicy))
    return TerminalPolicyPublic.model_validate(row) if row else TerminalPolicyPublic()


async def update_policy(
    session: AsyncSession, update: TerminalPolicyUpdate, actor: str
) -> TerminalPolicyPublic:
    row = await session.scalar(select(TerminalPolicy))
    if row is None:
        row = TerminalPolicy()
        session.add(row)
    for name, value in update.model_dump().items():
        setattr(row, name, value)
    row.updated_at = utcnow()
    row.updated_by = actor[:254]
    await session.flush()
    return TerminalPolicyPublic.model_validate(row)


async def change_policy(
    session: AsyncSession, auditor: Auditor, update: TerminalPolicyUpdate, actor: str
) -> TerminalPolicyPublic:
    """Store the policy (committed), then audit it (`terminal.policy_update`)."""
    saved = await update_policy(session, update, actor)
    await session.commit()
    await auditor(
        "terminal.policy_update", target="terminal-policy", detail=saved.model_dump(mode="json")
    )
    return saved


async def policy_updated_at(session: AsyncSession) -> datetime | None:
    """When the bound tenant last changed its policy (None: never, the defaults apply)."""
    return await session.scalar(select(TerminalPolicy.updated_at))
