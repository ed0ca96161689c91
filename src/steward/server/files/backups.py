"""Versioned backups of a device's file or directory in the tenant's store, restore to any
device of the tenant, and retention (keep N versions, N days).

A backup lives in `<tenant>/<group>/backups/<device>/<backup id>/`: one blob per file, named by
its number (`000001`), never by the name the device gave it, so nothing the agent sends becomes
a path on the server. The manifest maps each relative path to its blob, size and SHA-256.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from steward.protocol import MAX_FILE_CHUNK, FileEntry
from steward.server.db.base import utcnow
from steward.server.errors import InvalidInput, NotFound, PayloadTooLarge, StewardError
from steward.server.files.models import FileBackup
from steward.server.files.policy import Policy, join, relative_to
from steward.server.files.schemas import BackupPublic, Restored
from steward.server.files.service import DeviceFiles
from steward.server.files.store import TenantStore

log = logging.getLogger(__name__)

MAX_BACKUP_FILES = 10_000


class BackupDataMissing(StewardError):
    """The backup's files are no longer in the store."""

    status_code = 410
    code = "backup_data_missing"


def public(row: FileBackup) -> BackupPublic:
    return BackupPublic(
        id=row.id,
        device_id=row.device_id,
        group_id=row.group_id,
        source_path=row.source_path,
        kind=row.kind,
        reason=row.reason,
        created_at=row.created_at,
        created_by=row.created_by,
        size=row.size,
        file_count=row.file_count,
        sha256=row.sha256,
    )


def _blob(store_path: str, index: int) -> str:
    return f"{store_path}/{index:06d}"


async def _copy_in(
    files: DeviceFiles, store: TenantStore, path: str, blob: str, expected_size: int
) -> tuple[str, int]:
    """One file of the device into a blob of the store, chunk by chunk: (sha256, size)."""
    digest = hashlib.sha256()
    size = 0
    handle = await asyncio.to_thread(store.open_for_write, files.device.group_id, blob)
    try:
        while True:
            chunk = await files.remote.read(path, size)
            if chunk.data:
                await asyncio.to_thread(handle.write, chunk.data)
                digest.update(chunk.data)
                size += len(chunk.data)
            if chunk.eof or not chunk.data:
                break
            if size > max(expected_size, 0) + MAX_FILE_CHUNK:
                raise InvalidInput("the file grew during the backup", code="file_changed")
    finally:
        await asyncio.to_thread(handle.close)
    return digest.hexdigest(), size


@dataclass(frozen=True, slots=True)
class _Item:
    relative: str  # "" for a single-file backup
    entry: FileEntry


async def _items(files: DeviceFiles, path: str, root: FileEntry) -> tuple[str, list[_Item]]:
    if root.kind == "file":
        return "file", [_Item("", root)]
    if root.kind != "dir":
        raise InvalidInput("only files and directories can be backed up", code="unsupported_kind")
    entries, truncated = await files.remote.walk(path, MAX_BACKUP_FILES)
    if truncated:
        raise PayloadTooLarge(
            f"a backup holds at most {MAX_BACKUP_FILES} files", code="backup_too_large"
        )
    items = []
    for entry in entries:
        if entry.kind not in {"file", "dir"}:
            continue  # links and devices are not followed into the store
        checked = files.path(entry.path)  # what the agent reported: as untrusted as the rest
        items.append(_Item(relative_to(checked, path, files.device.os_name), entry))
    return "dir", items


async def snapshot(
    store: TenantStore, files: DeviceFiles, raw: str, *, reason: str, created_by: str
) -> FileBackup:
    """Copy a file or a directory of the device into the store. The row it returns is not
    added yet: the caller adds it once the agent's work is done (no transaction stays open
    while the agent works) and commits."""
    path = files.path(raw)
    root = await files.remote.stat(path)
    kind, items = await _items(files, path, root)
    total = sum(item.entry.size for item in items if item.entry.kind == "file")
    if total > files.policy.max_backup_bytes:
        raise PayloadTooLarge(
            f"backups are limited to {files.policy.max_backup_bytes} bytes in this organisation",
            code="backup_too_large",
        )
    backup_id = uuid.uuid4()
    store_path = f"backups/{files.device.id}/{backup_id}"
    manifest: dict[str, Any] = {"files": [], "dirs": []}
    size = 0
    try:
        await asyncio.to_thread(store.ensure_group_dir, files.device.group_id)
        index = 0
        for item in items:
            if item.entry.kind == "dir":
                manifest["dirs"].append(item.relative)
                continue
            index += 1
            blob = _blob(store_path, index)
            source = path if not item.relative else join(path, item.relative, files.device.os_name)
            digest, copied = await _copy_in(files, store, source, blob, item.entry.size)
            manifest["files"].append(
                {"path": item.relative, "blob": f"{index:06d}", "size": copied, "sha256": digest}
            )
            size += copied
    except BaseException:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(store.remove_tree, files.device.group_id, store_path)
        raise
    whole = hashlib.sha256()
    for entry in manifest["files"]:
        whole.update(f"{entry['path']}\0{entry['sha256']}\n".encode())
    row = FileBackup(
        id=backup_id,
        group_id=files.device.group_id,
        device_id=files.device.id,
        source_path=path,
        kind=kind,
        reason=reason,
        created_by=created_by,
        size=size,
        file_count=len(manifest["files"]),
        sha256=manifest["files"][0]["sha256"] if kind == "file" else whole.hexdigest(),
        manifest=manifest,
        store_path=store_path,
    )
    return row


async def apply_retention(
    session: AsyncSession,
    store: TenantStore,
    policy: Policy,
    device_id: uuid.UUID,
    source_path: str,
) -> int:
    """Drop the versions of one path of one device beyond the newest `keep N`, and those
    older than `keep days` (the newest version always stays). Returns how many went."""
    rows = (
        (
            await session.execute(
                select(FileBackup)
                .where(FileBackup.device_id == device_id, FileBackup.source_path == source_path)
                .order_by(FileBackup.created_at.desc(), FileBackup.id)
            )
        )
        .scalars()
        .all()
    )
    cutoff = utcnow() - timedelta(days=policy.backup_keep_days) if policy.backup_keep_days else None
    stale = [
        row
        for number, row in enumerate(rows)
        if number > 0
        and (number >= policy.backup_keep_versions or (cutoff and row.created_at < cutoff))
    ]
    for row in stale:
        with contextlib.suppress(OSError, StewardError):
            await asyncio.to_thread(store.remove_tree, row.group_id, row.store_path)
        await session.delete(row)
    await session.flush()
    return len(stale)


async def list_backups(
    session: AsyncSession, device_id: uuid.UUID, path: str | None = None, limit: int = 200
) -> list[BackupPublic]:
    query = select(FileBackup).where(FileBackup.device_id == device_id)
    if path:
        query = query.where(FileBackup.source_path == path)
    rows = await session.execute(query.order_by(FileBackup.created_at.desc()).limit(limit))
    return [public(row) for row in rows.scalars()]


async def get_backup(session: AsyncSession, backup_id: uuid.UUID) -> FileBackup:
    row = await session.get(FileBackup, backup_id)
    if row is None:
        raise NotFound("no such backup", code="backup_not_found")
    return row


async def latest_backup(
    session: AsyncSession, device_id: uuid.UUID, path: str
) -> FileBackup | None:
    query = (
        select(FileBackup)
        .where(FileBackup.device_id == device_id, FileBackup.source_path == path)
        .order_by(FileBackup.created_at.desc())
        .limit(1)
    )
    return (await session.execute(query)).scalar_one_or_none()


@dataclass(frozen=True, slots=True)
class BackupRef:
    """What restoring needs of a backup, read before the agent is asked anything."""

    id: uuid.UUID
    group_id: uuid.UUID
    source_path: str
    kind: str
    manifest: dict[str, Any]
    store_path: str

    @classmethod
    def of(cls, row: FileBackup) -> BackupRef:
        return cls(row.id, row.group_id, row.source_path, row.kind, row.manifest, row.store_path)


async def _copy_out(
    files: DeviceFiles, store: TenantStore, ref: BackupRef, entry: dict[str, Any], path: str
) -> int:
    blob = f"{ref.store_path}/{entry.get('blob', '')!s}"
    try:
        handle = await asyncio.to_thread(store.open_for_read, ref.group_id, blob)
    except FileNotFoundError:
        raise BackupDataMissing(f"the backup's copy of {entry.get('path')!r} is missing") from None
    upload_id = uuid.uuid4().hex
    offset = 0
    try:
        with handle:
            while True:
                data = await asyncio.to_thread(handle.read, MAX_FILE_CHUNK)
                if not data and offset > 0:
                    break
                offset = await files.remote.write(path, upload_id, offset, data)
                if not data:
                    break
        await files.remote.commit(path, upload_id, str(entry.get("sha256", "")), overwrite=True)
    except BaseException:
        with contextlib.suppress(Exception):
            await files.remote.abort(path, upload_id)
        raise
    return offset


async def restore(
    store: TenantStore, ref: BackupRef, files: DeviceFiles, raw_target: str
) -> Restored:
    """Write a backup onto a device (the same or another of the tenant), at `raw_target` or
    where it came from. Files there are replaced; other files are left alone."""
    target = files.path(raw_target or ref.source_path)
    os_name = files.device.os_name
    size = 0
    if ref.kind == "file":
        entries = ref.manifest.get("files", [])
        if len(entries) != 1:
            raise BackupDataMissing("the backup's manifest is damaged")
        size = await _copy_out(files, store, ref, entries[0], target)
        return Restored(device_id=files.device.id, path=target, files=1, size=size)
    await files.remote.mkdir(target, parents=True)
    for relative in ref.manifest.get("dirs", []):
        await files.remote.mkdir(files.path(join(target, str(relative), os_name)), parents=True)
    count = 0
    for entry in ref.manifest.get("files", []):
        path = files.path(join(target, str(entry.get("path", "")), os_name))
        size += await _copy_out(files, store, ref, entry, path)
        count += 1
    return Restored(device_id=files.device.id, path=target, files=count, size=size)
