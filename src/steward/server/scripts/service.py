"""The script library's rules: create, version, rename/archive, read, and resolve a script into
the payload an agent runs.

Functions take a tenant-bound session (the tenant filter scopes every query) and do not commit:
the caller owns the unit of work.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from steward.protocol.payloads import ScriptPayload
from steward.server.accounts.permissions import Permission
from steward.server.accounts.principal import Principal, authorize
from steward.server.db.base import utcnow
from steward.server.errors import Conflict, InvalidInput, NotFound
from steward.server.scripts.models import Script, ScriptVersion
from steward.server.scripts.params import ParameterSpec, bind
from steward.server.scripts.schemas import (
    ScriptCreate,
    ScriptDetail,
    ScriptRunRequest,
    ScriptUpdate,
    ScriptVersionCreate,
    ScriptVersionPublic,
    ScriptVersionSummary,
)

READ = Permission.COMMAND_RUN
WRITE = Permission.DEVICE_MANAGE


def sha256_of(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _not_found() -> NotFound:
    return NotFound("script not found", code="script_not_found")


async def get_script(session: AsyncSession, principal: Principal, script_id: uuid.UUID) -> Script:
    """A script of the principal's tenant; `script_not_found` for any other id."""
    script = await session.scalar(select(Script).where(Script.id == script_id))
    # The session's tenant filter already hides other tenants; the check also holds when a
    # caller hands in a system session.
    if script is None or script.tenant_id != principal.tenant_id:
        raise _not_found()
    return script


async def get_version(
    session: AsyncSession, principal: Principal, script_id: uuid.UUID, version: int | None = None
) -> tuple[Script, ScriptVersion]:
    script = await get_script(session, principal, script_id)
    number = script.latest_version if version is None else version
    row = await session.scalar(
        select(ScriptVersion).where(
            ScriptVersion.script_id == script.id, ScriptVersion.version == number
        )
    )
    if row is None:
        raise NotFound(f"script {script.name!r} has no version {number}", code="version_not_found")
    return script, row


async def list_scripts(
    session: AsyncSession, principal: Principal, *, include_archived: bool = False
) -> Sequence[Script]:
    authorize(principal, READ)
    query = select(Script).order_by(func.lower(Script.name))
    if not include_archived:
        query = query.where(Script.archived.is_(False))
    return (await session.scalars(query)).all()


async def _name_taken(session: AsyncSession, name: str, but: uuid.UUID | None = None) -> bool:
    query = select(Script.id).where(func.lower(Script.name) == name.lower())
    if but is not None:
        query = query.where(Script.id != but)
    return (await session.scalar(query.limit(1))) is not None


def _name_conflict(name: str) -> Conflict:
    return Conflict(f"a script named {name!r} already exists", code="script_exists")


def _version_row(
    script: Script, number: int, interpreter: str, body: str, parameters: list[ParameterSpec],
    principal: Principal, note: str,
) -> ScriptVersion:  # fmt: skip
    return ScriptVersion(
        script_id=script.id,
        version=number,
        interpreter=interpreter,
        body=body,
        sha256=sha256_of(body),
        parameters=[p.model_dump(mode="json") for p in parameters],
        created_by=principal.email,
        note=note,
    )


async def _flush_or_conflict(session: AsyncSession, name: str) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent save took the name or the version number
        raise Conflict(
            f"script {name!r} was changed at the same time; try again", code="script_conflict"
        ) from exc


async def create_script(
    session: AsyncSession, principal: Principal, request: ScriptCreate
) -> tuple[Script, ScriptVersion]:
    authorize(principal, WRITE)
    if await _name_taken(session, request.name):
        raise _name_conflict(request.name)
    now = utcnow()
    script = Script(
        id=uuid.uuid4(),
        name=request.name,
        description=request.description,
        interpreter=request.interpreter,
        latest_version=1,
        created_by=principal.email,
        created_at=now,
        updated_at=now,
        archived=False,
    )
    session.add(script)
    version = _version_row(
        script, 1, request.interpreter, request.body, request.parameters, principal, request.note
    )
    session.add(version)
    await _flush_or_conflict(session, request.name)
    return script, version


async def add_version(
    session: AsyncSession,
    principal: Principal,
    script_id: uuid.UUID,
    request: ScriptVersionCreate,
) -> tuple[Script, ScriptVersion]:
    """Version N+1 (versions are never changed). Refused for an archived script."""
    authorize(principal, WRITE)
    script = await get_script(session, principal, script_id)
    if script.archived:
        raise Conflict("the script is archived; restore it first", code="script_archived")
    interpreter = request.interpreter or script.interpreter
    number = script.latest_version + 1
    version = _version_row(
        script, number, interpreter, request.body, request.parameters, principal, request.note
    )
    session.add(version)
    script.latest_version = number
    script.interpreter = interpreter
    script.updated_at = utcnow()
    await _flush_or_conflict(session, script.name)
    return script, version


async def update_script(
    session: AsyncSession, principal: Principal, script_id: uuid.UUID, request: ScriptUpdate
) -> tuple[Script, dict[str, object]]:
    """Rename, describe, archive or restore. Returns the script and what changed."""
    authorize(principal, WRITE)
    script = await get_script(session, principal, script_id)
    changes: dict[str, object] = {}
    if request.name is not None and request.name != script.name:
        if await _name_taken(session, request.name, but=script.id):
            raise _name_conflict(request.name)
        changes["name"] = script.name = request.name
    if request.description is not None and request.description != script.description:
        changes["description"] = script.description = request.description
    if request.archived is not None and request.archived != script.archived:
        changes["archived"] = script.archived = request.archived
    if changes:
        script.updated_at = utcnow()
        await _flush_or_conflict(session, script.name)
    return script, changes


async def versions_of(session: AsyncSession, script: Script) -> Sequence[ScriptVersion]:
    query = (
        select(ScriptVersion)
        .where(ScriptVersion.script_id == script.id)
        .order_by(ScriptVersion.version.desc())
    )
    return (await session.scalars(query)).all()


def version_public(row: ScriptVersion) -> ScriptVersionPublic:
    return ScriptVersionPublic.model_validate(row, from_attributes=True)


async def script_detail(
    session: AsyncSession, principal: Principal, script_id: uuid.UUID
) -> ScriptDetail:
    authorize(principal, READ)
    script, latest = await get_version(session, principal, script_id)
    versions = await versions_of(session, script)
    return ScriptDetail(
        id=script.id,
        name=script.name,
        description=script.description,
        interpreter=script.interpreter,
        latest_version=script.latest_version,
        archived=script.archived,
        created_by=script.created_by,
        created_at=script.created_at,
        updated_at=script.updated_at,
        latest=version_public(latest),
        versions=[ScriptVersionSummary.model_validate(v) for v in versions],
    )


def parameters_of(row: ScriptVersion) -> list[ParameterSpec]:
    return [ParameterSpec.model_validate(p) for p in row.parameters]


async def resolve_script(
    session: AsyncSession, principal: Principal, request: ScriptRunRequest
) -> ScriptPayload:
    """The payload an agent runs for `request`: the exact text of the requested (or latest)
    version, and the parameter values as `env` and `args`.

    Raises NotFound `script_not_found` (unknown or another tenant's script) or
    `version_not_found`, Conflict `script_archived`, InvalidInput `invalid_parameter` (naming
    the parameter). Authorisation to run it on a device is the caller's."""
    authorize(principal, READ)
    script, version = await get_version(session, principal, request.script_id, request.version)
    if script.archived:
        raise Conflict(f"script {script.name!r} is archived", code="script_archived")
    env, args = bind(parameters_of(version), request.params)
    try:
        return ScriptPayload(
            script_id=str(script.id),
            name=script.name,
            version=version.version,
            interpreter=version.interpreter,  # type: ignore[arg-type]  # checked when saved
            body=version.body,
            sha256=version.sha256,
            env=env,
            args=args,
        )
    except ValueError as exc:  # pydantic's ValidationError is one
        raise InvalidInput(f"the script cannot be run: {exc}", code="invalid_script") from exc
