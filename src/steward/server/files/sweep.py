"""The files feature's periodic housekeeping, run by the leader (`runtime.py`, every
`file_sweep_interval_s`), tenant by tenant in a session bound to that tenant:

- backups older than the tenant's `backup_keep_days` go, rows and store files (the newest
  version of each device and path always stays; the count rule runs after each backup);
- uploads still open `file_upload_expiry_s` after they began are expired, and an online
  device's agent is asked (best effort) to remove the partial file;
- backup directories of the store without a row (a device or group deleted, its rows gone by
  cascade; a removal that failed) are deleted once nothing has been written in them for
  `ORPHAN_GRACE` (a backup writes its blobs before its row is committed).

Rows go first and are committed; store files go afterwards, so a failure leaves an orphan
directory for the next sweep, never a row without its data.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import and_, delete, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from steward.server.db.base import utcnow
from steward.server.db.tenant_filter import bind_tenant
from steward.server.devices.models import Device, DeviceStatus
from steward.server.files.models import FileBackup, FileUpload, UploadStatus
from steward.server.files.policy import Policy, load_policy
from steward.server.files.remote import Relay, RemoteFiles
from steward.server.files.store import TenantStore
from steward.server.tenancy.models import Tenant

if TYPE_CHECKING:
    from steward.server.runtime import Runtime

log = logging.getLogger(__name__)

ORPHAN_GRACE = timedelta(hours=1)
ABORT_TIMEOUT_S = 10.0
BATCH = 500  # rows per statement


@dataclass
class SweepReport:
    backups_removed: int = 0
    uploads_expired: int = 0
    aborts_sent: int = 0  # answered by the agent
    orphans_removed: int = 0


@dataclass(frozen=True, slots=True)
class _Expired:
    upload_id: uuid.UUID
    device_id: uuid.UUID
    path: str
    os_name: str
    online: bool


async def sweep_files(runtime: Runtime) -> SweepReport:
    """The periodic sweep of a running server."""
    settings = runtime.settings
    return await sweep(
        runtime.sessions,
        runtime.system_sessions,
        runtime.hub.relay,
        settings.data_dir,
        upload_expiry=timedelta(seconds=settings.file_upload_expiry_s),
    )


async def sweep(
    sessions: async_sessionmaker[AsyncSession],
    system_sessions: async_sessionmaker[AsyncSession],
    relay: Relay,
    data_dir: Path,
    *,
    upload_expiry: timedelta,
    now: datetime | None = None,
) -> SweepReport:
    """Every tenant's backups, uploads and store (see the module). One tenant's failure is
    logged and the others go on."""
    now = now or utcnow()
    async with system_sessions() as session:
        tenant_ids = list(await session.scalars(select(Tenant.id).order_by(Tenant.id)))
    report = SweepReport()
    for tenant_id in tenant_ids:
        try:
            await _sweep_tenant(
                sessions, relay, TenantStore(data_dir, tenant_id), now, upload_expiry, report
            )
        except Exception:
            log.warning("files sweep of tenant %s failed", tenant_id, exc_info=True)
    return report


async def _sweep_tenant(
    sessions: async_sessionmaker[AsyncSession],
    relay: Relay,
    store: TenantStore,
    now: datetime,
    upload_expiry: timedelta,
    report: SweepReport,
) -> None:
    async with sessions() as session:
        bind_tenant(session, store.tenant_id)
        policy = await load_policy(session)
        removed = await _drop_old_backups(session, policy, now)
        expired = await _expire_uploads(session, now - upload_expiry, now)
        await session.commit()
        known = await _backup_dirs(session) if await asyncio.to_thread(store.root.is_dir) else None
    report.backups_removed += len(removed)
    report.uploads_expired += len(expired)
    for group_id, store_path in removed:
        try:
            await asyncio.to_thread(store.remove_tree, group_id, store_path)
        except Exception:  # the directory stays an orphan: the next sweep tries again
            log.warning("could not remove backup files %s", store_path, exc_info=True)
    for upload in expired:
        if upload.online and await _abort(relay, policy, upload):
            report.aborts_sent += 1
    if known is not None:
        grace = (now - ORPHAN_GRACE).timestamp()
        report.orphans_removed += await asyncio.to_thread(_remove_orphans, store, known, grace)


async def _drop_old_backups(
    session: AsyncSession, policy: Policy, now: datetime
) -> list[tuple[uuid.UUID, str]]:
    """Delete the rows of backups past the days rule that have a newer version of the same
    device and path (`apply_retention`'s order: newest first, then by id); return where their
    files are."""
    if not policy.backup_keep_days:
        return []
    cutoff = now - timedelta(days=policy.backup_keep_days)
    newer = aliased(FileBackup)
    has_newer = exists().where(
        newer.device_id == FileBackup.device_id,
        newer.source_path == FileBackup.source_path,
        or_(
            newer.created_at > FileBackup.created_at,
            and_(newer.created_at == FileBackup.created_at, newer.id < FileBackup.id),
        ),
    )
    query = (
        select(FileBackup.id, FileBackup.group_id, FileBackup.store_path)
        .where(FileBackup.created_at < cutoff, has_newer)
        .order_by(FileBackup.created_at)
        .limit(BATCH)
    )
    removed: list[tuple[uuid.UUID, str]] = []
    while True:
        rows = (await session.execute(query)).all()
        if not rows:
            return removed
        await session.execute(delete(FileBackup).where(FileBackup.id.in_([r.id for r in rows])))
        removed += [(r.group_id, r.store_path) for r in rows if r.store_path]
        if len(rows) < BATCH:
            return removed


async def _expire_uploads(session: AsyncSession, cutoff: datetime, now: datetime) -> list[_Expired]:
    """Mark the uploads still open since before `cutoff` expired."""
    query = (
        select(
            FileUpload.id, FileUpload.device_id, FileUpload.path, Device.os_name,
            DeviceStatus.online,
        )
        .join(Device, Device.id == FileUpload.device_id)
        .outerjoin(DeviceStatus, DeviceStatus.device_id == FileUpload.device_id)
        .where(FileUpload.status == UploadStatus.OPEN, FileUpload.created_at < cutoff)
        .limit(BATCH)
    )  # fmt: skip
    expired: list[_Expired] = []
    while True:
        rows = (await session.execute(query)).all()
        if not rows:
            return expired
        await session.execute(
            update(FileUpload)
            .where(FileUpload.id.in_([r.id for r in rows]), FileUpload.status == UploadStatus.OPEN)
            .values(status=UploadStatus.EXPIRED, finished_at=now)
        )
        expired += [_Expired(r.id, r.device_id, r.path, r.os_name, bool(r.online)) for r in rows]
        if len(rows) < BATCH:
            return expired


async def _abort(relay: Relay, policy: Policy, upload: _Expired) -> bool:
    """Ask the agent to remove the partial file; whatever goes wrong is only logged (the
    agent may have left, the path may be outside roots changed since)."""
    remote = RemoteFiles(
        relay, upload.device_id, policy.roots_for(upload.os_name), timeout_s=ABORT_TIMEOUT_S
    )
    try:
        await remote.abort(upload.path, upload.upload_id.hex)
    except Exception as exc:
        log.info("expired upload %s: the agent did not remove it (%s)", upload.upload_id, exc)
        return False
    return True


async def _backup_dirs(session: AsyncSession) -> set[tuple[uuid.UUID, str]]:
    rows = await session.execute(select(FileBackup.group_id, FileBackup.store_path))
    return {(row.group_id, row.store_path) for row in rows}


def _remove_orphans(store: TenantStore, known: set[tuple[uuid.UUID, str]], before: float) -> int:
    """Delete the store's backup directories without a row, untouched since `before` (a
    timestamp); then the device directories left empty."""
    removed = 0
    emptied: set[tuple[uuid.UUID, str]] = set()
    for group_id, relative, modified in list(store.backup_dirs()):
        if (group_id, relative) in known or modified >= before:
            continue
        try:
            store.remove_tree(group_id, relative)
        except Exception:
            log.warning("could not remove orphan backup files %s", relative, exc_info=True)
            continue
        removed += 1
        emptied.add((group_id, relative.rsplit("/", 1)[0]))
    for group_id, device_dir in emptied:
        store.remove_empty_dir(group_id, device_dir)
    return removed
