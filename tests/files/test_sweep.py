"""The periodic files sweep on SQLite and PostgreSQL: backups past each tenant's days rule (the
newest kept), uploads left open expired (and aborted on online agents), store directories whose
rows are gone (a deleted device or group) removed."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select

from steward.protocol import FileOp, FileRequest, FileResponse
from steward.server.db.base import utcnow
from steward.server.db.tenant_filter import bind_tenant
from steward.server.devices.models import Device
from steward.server.files.models import FileBackup, FileUpload, UploadStatus
from steward.server.files.policy import Policy, save_policy
from steward.server.files.store import TenantStore
from steward.server.files.sweep import ORPHAN_GRACE, SweepReport, sweep
from steward.server.files.transfers import UploadExpired, UploadRef, write_chunk
from steward.server.tenancy import groups
from steward.server.tenancy.models import Tenant
from tests.tenancy.helpers import Sessions, make_device, make_tenant

DAY = timedelta(days=1)
EXPIRY = timedelta(hours=24)


class FakeRelay:
    """Answers every file request with `ok`, or refuses them all (an agent that left)."""

    def __init__(self, *, fail: bool = False) -> None:
        self.requests: list[tuple[uuid.UUID, FileRequest]] = []
        self.fail = fail

    async def request(
        self, device_id: uuid.UUID, request: FileRequest, *, timeout_s: float = 30.0
    ) -> FileResponse:
        self.requests.append((device_id, request))
        if self.fail:
            raise ConnectionError("gone")
        return FileResponse(request_id=request.request_id, ok=True)


async def _world(system: Sessions, sessions: Sessions, keep_days: int = 7) -> tuple[Tenant, Any]:
    """A tenant whose policy keeps backups `keep_days` days, with one online device."""
    async with system() as session:
        tenant = await make_tenant(session, admin=False)
        device_id = await make_device(session, tenant, online=True)
        await session.commit()
    async with sessions() as session:
        bind_tenant(session, tenant.id)
        await save_policy(session, Policy(backup_keep_days=keep_days), "test")
        device = await session.get(Device, device_id)
        assert device is not None
        await session.commit()
    return tenant, device


async def _backup(
    system: Sessions, store: TenantStore, device: Device, path: str, created_at: datetime
) -> FileBackup:
    """A backup row with one blob in the store."""
    backup_id = uuid.uuid4()
    store_path = f"backups/{device.id}/{backup_id}"
    with store.open_for_write(device.group_id, f"{store_path}/000001") as handle:
        handle.write(b"contents")
    row = FileBackup(
        id=backup_id,
        tenant_id=device.tenant_id,
        group_id=device.group_id,
        device_id=device.id,
        source_path=path,
        kind="file",
        created_at=created_at,
        manifest={"files": [{"path": "", "blob": "000001", "size": 8}], "dirs": []},
        store_path=store_path,
    )
    async with system() as session:
        session.add(row)
        await session.commit()
    return row


def _exists(store: TenantStore, row: FileBackup) -> bool:
    return store.resolve(row.group_id, row.store_path).is_dir()


async def _remaining(system: Sessions, tenant_id: uuid.UUID) -> set[uuid.UUID]:
    async with system() as session:
        query = select(FileBackup.id).where(FileBackup.tenant_id == tenant_id)
        return set(await session.scalars(query))


async def _sweep(
    sessions: Sessions,
    system: Sessions,
    data_dir: Path,
    relay: FakeRelay | None = None,
    now: datetime | None = None,
) -> SweepReport:
    return await sweep(
        sessions, system, relay or FakeRelay(), data_dir, upload_expiry=EXPIRY, now=now
    )


async def test_backups_past_the_days_rule_go_with_their_files_the_newest_stays(
    sessions: Sessions, system_sessions: Sessions, data_dir: Path
) -> None:
    tenant, device = await _world(system_sessions, sessions, keep_days=7)
    store = TenantStore(data_dir, tenant.id)
    now = utcnow()
    old = await _backup(system_sessions, store, device, "/srv/a.conf", now - 30 * DAY)
    older = await _backup(system_sessions, store, device, "/srv/a.conf", now - 40 * DAY)
    recent = await _backup(system_sessions, store, device, "/srv/a.conf", now - DAY)
    # the only version of another path: old, yet the newest of its path, so it stays
    alone = await _backup(system_sessions, store, device, "/srv/b.conf", now - 90 * DAY)
    # another tenant keeping backups forever (days 0): nothing of it goes
    other, other_device = await _world(system_sessions, sessions, keep_days=0)
    other_store = TenantStore(data_dir, other.id)
    kept = await _backup(system_sessions, other_store, other_device, "/srv/a", now - 90 * DAY)
    await _backup(system_sessions, other_store, other_device, "/srv/a", now - DAY)

    report = await _sweep(sessions, system_sessions, data_dir)

    assert await _remaining(system_sessions, tenant.id) == {recent.id, alone.id}
    assert not _exists(store, old) and not _exists(store, older)
    assert _exists(store, recent) and _exists(store, alone)
    assert kept.id in await _remaining(system_sessions, other.id) and _exists(other_store, kept)
    assert report.backups_removed >= 2 and report.orphans_removed == 0
    # a second sweep finds nothing more of this tenant
    await _sweep(sessions, system_sessions, data_dir)
    assert await _remaining(system_sessions, tenant.id) == {recent.id, alone.id}


async def _upload(system: Sessions, device: Device, created_at: datetime) -> FileUpload:
    row = FileUpload(
        tenant_id=device.tenant_id,
        device_id=device.id,
        path="/srv/big.iso",
        size=10,
        created_at=created_at,
    )
    async with system() as session:
        session.add(row)
        await session.commit()
    return row


async def _status(system: Sessions, upload_id: uuid.UUID) -> str:
    async with system() as session:
        row = await session.get(FileUpload, upload_id)
        assert row is not None
        return row.status


async def test_abandoned_uploads_expire_and_their_agent_is_told(
    sessions: Sessions, system_sessions: Sessions, data_dir: Path
) -> None:
    tenant, device = await _world(system_sessions, sessions)
    now = utcnow()
    abandoned = await _upload(system_sessions, device, now - EXPIRY - timedelta(minutes=1))
    fresh = await _upload(system_sessions, device, now - EXPIRY + timedelta(minutes=5))
    relay = FakeRelay()

    report = await _sweep(sessions, system_sessions, data_dir, relay)

    assert await _status(system_sessions, abandoned.id) == UploadStatus.EXPIRED
    assert await _status(system_sessions, fresh.id) == UploadStatus.OPEN
    aborts = [(d, r) for d, r in relay.requests if r.upload_id == abandoned.id.hex]
    assert len(aborts) == 1
    device_id, request = aborts[0]
    assert device_id == device.id and request.op == FileOp.ABORT
    assert request.path == "/srv/big.iso" and request.roots == list(Policy().linux_roots)
    assert report.uploads_expired >= 1 and report.aborts_sent >= 1
    assert not [r for _d, r in relay.requests if r.upload_id == fresh.id.hex]

    # a chunk for it is refused with its own code (the agent is not asked)
    async with sessions() as session:
        bind_tenant(session, tenant.id)
        row = await session.get(FileUpload, abandoned.id)
        assert row is not None
    ref = UploadRef(row.id, row.device_id, row.path, row.size, row.overwrite, row.status, "")
    files: Any = None  # refused before the device's files are touched
    with pytest.raises(UploadExpired) as refused:
        await write_chunk(files, ref, 0, b"late")
    assert refused.value.status_code == 410 and refused.value.code == "upload_expired"


async def test_an_unreachable_agent_does_not_stop_the_sweep(
    sessions: Sessions, system_sessions: Sessions, data_dir: Path
) -> None:
    _tenant, device = await _world(system_sessions, sessions)
    abandoned = await _upload(system_sessions, device, utcnow() - 2 * EXPIRY)
    await _sweep(sessions, system_sessions, data_dir, FakeRelay(fail=True))
    assert await _status(system_sessions, abandoned.id) == UploadStatus.EXPIRED


async def test_files_of_a_deleted_device_or_group_go_once_the_grace_has_passed(
    sessions: Sessions, system_sessions: Sessions, data_dir: Path
) -> None:
    tenant, device = await _world(system_sessions, sessions)
    store = TenantStore(data_dir, tenant.id)
    now = utcnow()
    kept = await _backup(system_sessions, store, device, "/srv/a", now)
    async with system_sessions() as session:
        lab_device_id = await make_device(session, tenant, group="lab")
        lab_device = await session.get(Device, lab_device_id)
        gone_device_id = await make_device(session, tenant)
        gone_device = await session.get(Device, gone_device_id)
        await session.commit()
    assert lab_device is not None and gone_device is not None
    of_gone_device = await _backup(system_sessions, store, gone_device, "/srv/a", now)
    of_lab = await _backup(system_sessions, store, lab_device, "/srv/a", now)
    # a backup being written: its blobs are there, its row is not yet
    in_progress = f"backups/{device.id}/{uuid.uuid4()}"
    with store.open_for_write(device.group_id, f"{in_progress}/000001") as handle:
        handle.write(b"half")
    async with system_sessions() as session:
        await session.execute(delete(Device).where(Device.id == gone_device_id))  # cascades
        await groups.move_device(session, lab_device_id, "all")
        await groups.delete_group(session, tenant.id, "lab")  # its backup rows cascade
        await session.commit()
    assert await _remaining(system_sessions, tenant.id) == {kept.id}

    # within the grace (as a backup being written is), nothing goes
    assert (await _sweep(sessions, system_sessions, data_dir)).orphans_removed == 0
    assert _exists(store, of_gone_device) and _exists(store, of_lab)

    later = utcnow() + ORPHAN_GRACE + timedelta(minutes=1)
    report = await _sweep(sessions, system_sessions, data_dir, now=later)

    assert report.orphans_removed == 3  # the deleted device's, the deleted group's, the half one
    assert not _exists(store, of_gone_device) and not _exists(store, of_lab)
    assert not store.resolve(device.group_id, in_progress).exists()
    assert not store.resolve(gone_device.group_id, f"backups/{gone_device_id}").exists()
    assert _exists(store, kept)
    assert await _remaining(system_sessions, tenant.id) == {kept.id}
