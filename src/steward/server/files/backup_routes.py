"""Backups of devices' files (snapshot, list, restore to the same or another device) and the
tenant's file policy."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from steward.protocol.streams import MAX_PATH_CHARS
from steward.server.accounts.permissions import Permission as P
from steward.server.accounts.principal import Principal
from steward.server.deps import AuditorDep, RuntimeDep, SessionDep, require
from steward.server.devices.access import device_for
from steward.server.files import backups, service
from steward.server.files.policy import Policy, change_policy, load_policy
from steward.server.files.routes import audited, open_files, work_then_commit
from steward.server.files.schemas import (
    BackupCreate,
    BackupPublic,
    FilePolicyPublic,
    RestoreBody,
    Restored,
)

Reader = Annotated[Principal, require(P.FILE_READ)]
Writer = Annotated[Principal, require(P.FILE_WRITE)]

router = APIRouter(prefix="/api/v1", tags=["files"])


@router.get("/devices/{device_id}/backups", response_model=list[BackupPublic])
async def list_backups(
    device_id: uuid.UUID,
    principal: Reader,
    session: SessionDep,
    path: Annotated[str | None, Query(max_length=MAX_PATH_CHARS)] = None,
) -> list[BackupPublic]:
    """The device's backups, newest first (of one path with `path`)."""
    await device_for(session, principal, P.FILE_READ, device_id)
    return await backups.list_backups(session, device_id, path)


@router.post("/devices/{device_id}/backups", response_model=BackupPublic, status_code=201)
async def create_backup(
    device_id: uuid.UUID,
    body: BackupCreate,
    principal: Writer,
    session: SessionDep,
    runtime: RuntimeDep,
    auditor: AuditorDep,
) -> BackupPublic:
    """Copy a file or directory of the device into the tenant's store; older versions beyond
    the retention go."""
    files = await open_files(runtime, session, principal, P.FILE_WRITE, device_id)
    store = service.tenant_store(runtime.settings.data_dir, principal.tenant_id)

    async def work() -> BackupPublic:
        row = await backups.snapshot(
            store, files, body.path, reason="manual", created_by=principal.actor
        )
        session.add(row)
        await session.flush()
        await backups.apply_retention(session, store, files.policy, device_id, row.source_path)
        return backups.public(row)

    return await audited(
        auditor, "file.backup", device_id, body.path, work_then_commit(session, work()),
        risk="medium",
    )  # fmt: skip


@router.get("/backups/{backup_id}", response_model=BackupPublic)
async def get_backup(backup_id: uuid.UUID, principal: Reader, session: SessionDep) -> BackupPublic:
    row = await backups.get_backup(session, backup_id)
    await device_for(session, principal, P.FILE_READ, row.device_id)
    return backups.public(row)


@router.post("/backups/{backup_id}/restore", response_model=Restored)
async def restore_backup(
    backup_id: uuid.UUID,
    body: RestoreBody,
    principal: Writer,
    session: SessionDep,
    runtime: RuntimeDep,
    auditor: AuditorDep,
) -> Restored:
    """Write a backup onto its device or another of the tenant (`device_id`), where it came
    from or at `path`."""
    row = await backups.get_backup(session, backup_id)
    await device_for(session, principal, P.FILE_READ, row.device_id)
    ref = backups.BackupRef.of(row)
    target_id = body.device_id or row.device_id
    files = await open_files(runtime, session, principal, P.FILE_WRITE, target_id)
    store = service.tenant_store(runtime.settings.data_dir, principal.tenant_id)
    return await audited(
        auditor, "file.restore", target_id, body.path or ref.source_path,
        backups.restore(store, ref, files, body.path), risk="high",
        detail={"backup_id": str(backup_id)},
    )  # fmt: skip


@router.get("/tenant/file-policy", response_model=FilePolicyPublic)
async def get_file_policy(principal: Reader, session: SessionDep) -> FilePolicyPublic:
    return _public(await load_policy(session))


@router.put("/tenant/file-policy", response_model=FilePolicyPublic)
async def put_file_policy(
    body: FilePolicyPublic,
    principal: Annotated[Principal, require(P.TENANT_MANAGE)],
    session: SessionDep,
    auditor: AuditorDep,
) -> FilePolicyPublic:
    policy = await change_policy(session, auditor, Policy(**body.model_dump()), principal.actor)
    return _public(policy)


def _public(policy: Policy) -> FilePolicyPublic:
    return FilePolicyPublic(
        linux_roots=list(policy.linux_roots),
        windows_roots=list(policy.windows_roots),
        allow_system_dirs=policy.allow_system_dirs,
        max_upload_bytes=policy.max_upload_bytes,
        max_editor_bytes=policy.max_editor_bytes,
        max_backup_bytes=policy.max_backup_bytes,
        backup_keep_versions=policy.backup_keep_versions,
        backup_keep_days=policy.backup_keep_days,
    )
