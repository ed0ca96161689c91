"""The library's service on SQLite and PostgreSQL: versions are immutable, resolving gives the
exact text and typed values, another tenant's script does not exist."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from steward.server.accounts.models import Role
from steward.server.accounts.principal import Principal
from steward.server.accounts.service import create_user
from steward.server.accounts.sessions import principal_of
from steward.server.db.tenant_filter import bind_tenant
from steward.server.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from steward.server.scripts import service
from steward.server.scripts.models import ScriptVersion
from steward.server.scripts.schemas import (
    ScriptCreate,
    ScriptRunRequest,
    ScriptUpdate,
    ScriptVersionCreate,
)
from steward.server.tenancy.service import create_tenant
from tests.scripts.helpers import script_body

Sessions = async_sessionmaker[AsyncSession]


async def _principal(system_sessions: Sessions, role: Role = Role.ENGINEER) -> Principal:
    async with system_sessions() as session:
        slug = f"sc{uuid.uuid4().hex[:8]}"
        tenant = await create_tenant(session, slug, slug.upper())
        user = await create_user(session, tenant, f"eng@{slug}.example", "correct-horse-1", role)
        await session.commit()
        return principal_of(user, tenant)


async def _create(sessions: Sessions, principal: Principal, **overrides: object) -> uuid.UUID:
    async with sessions() as session:
        bind_tenant(session, principal.tenant_id)
        request = ScriptCreate.model_validate(script_body(**overrides))
        script, _ = await service.create_script(session, principal, request)
        await session.commit()
        return script.id


async def test_versions_are_immutable_and_resolve_picks_one(
    sessions: Sessions, system_sessions: Sessions
) -> None:
    engineer = await _principal(system_sessions)
    script_id = await _create(sessions, engineer)
    async with sessions() as session:
        bind_tenant(session, engineer.tenant_id)
        new = ScriptVersionCreate(body="echo two\n", interpreter="bash", note="second")
        script, version = await service.add_version(session, engineer, script_id, new)
        await session.commit()
        assert (script.latest_version, version.version) == (2, 2)
    async with sessions() as session:
        bind_tenant(session, engineer.tenant_id)
        rows = (await session.scalars(select(ScriptVersion).order_by(ScriptVersion.version))).all()
        assert [(r.version, r.interpreter) for r in rows] == [(1, "sh"), (2, "bash")]
        assert rows[0].body.startswith('echo "target=')  # version 1 kept its text
        first = await service.resolve_script(
            session,
            engineer,
            ScriptRunRequest(script_id=script_id, version=1, params={"target": "a; $(rm -rf /)"}),
        )
        latest = await service.resolve_script(
            session, engineer, ScriptRunRequest(script_id=script_id)
        )
    assert first.version == 1 and first.interpreter == "sh"
    assert first.sha256 == service.sha256_of(first.body)
    assert first.env["STEWARD_PARAM_TARGET"] == "a; $(rm -rf /)"
    assert "rm -rf" not in first.body
    assert first.args == ["3", "safe"]
    assert (latest.version, latest.body, latest.env, latest.args) == (2, "echo two\n", {}, [])


async def test_errors_of_resolve(sessions: Sessions, system_sessions: Sessions) -> None:
    engineer = await _principal(system_sessions)
    stranger = await _principal(system_sessions)
    script_id = await _create(sessions, engineer)
    async with sessions() as session:
        bind_tenant(session, engineer.tenant_id)
        with pytest.raises(InvalidInput) as bad:
            await service.resolve_script(
                session,
                engineer,
                ScriptRunRequest(script_id=script_id, params={"target": "t", "count": "x"}),
            )
        assert bad.value.code == "invalid_parameter" and "'count'" in bad.value.message
        with pytest.raises(NotFound) as missing:
            await service.resolve_script(
                session, engineer, ScriptRunRequest(script_id=script_id, version=9)
            )
        assert missing.value.code == "version_not_found"
        with pytest.raises(NotFound) as unknown:
            await service.resolve_script(
                session, engineer, ScriptRunRequest(script_id=uuid.uuid4())
            )
        assert unknown.value.code == "script_not_found"
        await service.update_script(session, engineer, script_id, ScriptUpdate(archived=True))
        await session.commit()
        with pytest.raises(Conflict) as archived:
            await service.resolve_script(
                session, engineer, ScriptRunRequest(script_id=script_id, params={"target": "x"})
            )
        assert archived.value.code == "script_archived"
        with pytest.raises(Conflict):
            await service.add_version(
                session, engineer, script_id, ScriptVersionCreate(body="echo\n")
            )
    # Another tenant's session, even holding the id, finds nothing.
    async with sessions() as session:
        bind_tenant(session, stranger.tenant_id)
        with pytest.raises(NotFound) as foreign:
            await service.resolve_script(session, stranger, ScriptRunRequest(script_id=script_id))
        assert foreign.value.code == "script_not_found"
        assert await service.list_scripts(session, stranger, include_archived=True) == []


async def test_names_are_unique_per_tenant_and_roles_are_checked(
    sessions: Sessions, system_sessions: Sessions
) -> None:
    engineer = await _principal(system_sessions)
    other = await _principal(system_sessions)
    viewer = await _principal(system_sessions, Role.VIEWER)
    await _create(sessions, engineer, name="Backup")
    with pytest.raises(Conflict) as taken:
        await _create(sessions, engineer, name="backup")  # case does not make it another
    assert taken.value.code == "script_exists"
    await _create(sessions, other, name="Backup")  # another tenant may use the name
    with pytest.raises(PermissionDenied):
        await _create(sessions, viewer, name="Nope")
