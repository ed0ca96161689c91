"""Changes to the script library, each done, committed and audited: the one implementation
behind the API routes and the console pages.

The audit record is written after the commit: the audit log writes in its own transaction, and
on SQLite the pool's single connection must be free for it.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from steward.server.accounts.principal import Principal
from steward.server.audit.auditor import Auditor
from steward.server.scripts import service
from steward.server.scripts.models import Script, ScriptVersion
from steward.server.scripts.schemas import ScriptCreate, ScriptUpdate, ScriptVersionCreate


def _target(script: Script) -> str:
    return f"script:{script.id}"


async def create(
    session: AsyncSession, auditor: Auditor, principal: Principal, request: ScriptCreate
) -> tuple[Script, ScriptVersion]:
    script, version = await service.create_script(session, principal, request)
    detail = {
        "name": script.name,
        "interpreter": script.interpreter,
        "version": version.version,
        "sha256": version.sha256,
        "parameters": [p.name for p in request.parameters],
    }
    await session.commit()
    await auditor("script.create", target=_target(script), risk="medium", detail=detail)
    return script, version


async def add_version(
    session: AsyncSession,
    auditor: Auditor,
    principal: Principal,
    script_id: uuid.UUID,
    request: ScriptVersionCreate,
) -> tuple[Script, ScriptVersion]:
    script, version = await service.add_version(session, principal, script_id, request)
    detail = {
        "name": script.name,
        "interpreter": version.interpreter,
        "version": version.version,
        "sha256": version.sha256,
        "note": version.note,
        "parameters": [p.name for p in request.parameters],
    }
    await session.commit()
    await auditor("script.version", target=_target(script), risk="medium", detail=detail)
    return script, version


async def update(
    session: AsyncSession,
    auditor: Auditor,
    principal: Principal,
    script_id: uuid.UUID,
    request: ScriptUpdate,
) -> Script:
    script, changes = await service.update_script(session, principal, script_id, request)
    if not changes:
        return script
    detail: dict[str, object] = {"name": script.name, "changes": changes}
    _, latest = await service.get_version(session, principal, script.id)
    detail["sha256"] = latest.sha256
    await session.commit()
    await auditor("script.update", target=_target(script), detail=detail)
    return script
