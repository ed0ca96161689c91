"""The online editor: text files up to the tenant's size limit, every save preceded by a backup
of the version it replaces, and "revert" back through those versions."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from steward.server.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from steward.server.files.backups import BackupRef, apply_retention, restore, snapshot
from steward.server.files.models import FileBackup
from steward.server.files.schemas import TextFile, TextSaved
from steward.server.files.service import DeviceFiles
from steward.server.files.store import TenantStore

_BINARY_PROBE = 8192


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the editor opens files of at most {limit} bytes in this organisation",
        code="too_large_for_editor",
    )


def decode_text(data: bytes) -> str:
    """The text of `data`, or `binary_file` (a NUL byte near the start, or not UTF-8)."""
    if b"\x00" in data[:_BINARY_PROBE]:
        raise InvalidInput("this is a binary file: download it instead", code="binary_file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(
            "this file is not UTF-8 text: download it instead", code="binary_file"
        ) from None


async def read_text(files: DeviceFiles, raw: str) -> TextFile:
    path = files.path(raw)
    entry = await files.remote.stat(path)
    if entry.kind not in {"file", "link"}:
        raise InvalidInput("only files open in the editor", code="is_a_directory")
    limit = files.policy.max_editor_bytes
    if entry.size > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    offset = 0
    while True:
        chunk = await files.remote.read(path, offset)
        chunks.append(chunk.data)
        offset += len(chunk.data)
        if offset > limit:
            raise _too_large(limit)
        if chunk.eof or not chunk.data:
            break
    data = b"".join(chunks)
    return TextFile(
        path=path,
        content=decode_text(data),
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        modified=datetime.fromtimestamp(entry.modified, UTC),
    )


@dataclass(frozen=True, slots=True)
class _Current:
    exists: bool
    sha256: str = ""


async def _current(files: DeviceFiles, path: str) -> _Current:
    try:
        entry = await files.remote.stat(path)
    except NotFound:
        return _Current(False)
    if entry.kind == "dir":
        raise InvalidInput(f"{path!r} is a directory", code="is_a_directory")
    digest, _size = await files.remote.hash(path)
    return _Current(True, digest)


async def save_text(
    session: AsyncSession,
    store: TenantStore,
    files: DeviceFiles,
    raw: str,
    content: str,
    base_sha256: str,
) -> TextSaved:
    """Back up the version on the device, then write `content` over it (the caller commits).
    Refused (409 `file_changed`) when the file is no longer the version the editor opened."""
    path = files.path(raw)
    data = content.encode("utf-8")
    if len(data) > files.policy.max_editor_bytes:
        raise _too_large(files.policy.max_editor_bytes)
    current = await _current(files, path)
    if base_sha256 and current.exists and current.sha256 != base_sha256:
        raise Conflict(
            "the file changed on the device since you opened it; reload it", code="file_changed"
        )
    backup: FileBackup | None = None
    if current.exists:
        backup = await snapshot(store, files, path, reason="editor", created_by=files.actor)
    digest = await files.remote.put(path, data, overwrite=current.exists)
    if backup is not None:
        session.add(backup)
        await session.flush()
        await apply_retention(session, store, files.policy, files.device.id, path)
    return TextSaved(
        path=path, sha256=digest, size=len(data), backup_id=backup.id if backup else None
    )


async def revert_text(
    session: AsyncSession, store: TenantStore, files: DeviceFiles, raw: str
) -> tuple[TextSaved, BackupRef]:
    """Put back the version before the current one: the newest backup when the file is not a
    backed-up version, else the one older than that (so reverting again goes further back)."""
    path = files.path(raw)
    rows = (
        (
            await session.execute(
                select(FileBackup)
                .where(FileBackup.device_id == files.device.id, FileBackup.source_path == path)
                .where(FileBackup.kind == "file")
                .order_by(FileBackup.created_at.desc())
                .limit(100)
            )
        )
        .scalars()
        .all()
    )
    refs = [(BackupRef.of(row), row.sha256) for row in rows]
    await session.rollback()  # the agent works next
    current = await _current(files, path)
    # Start below the newest version that is the current content (reverted to before).
    start = next((n + 1 for n, (_ref, digest) in enumerate(refs) if digest == current.sha256), 0)
    chosen = next((ref for ref, digest in refs[start:] if digest != current.sha256), None)
    if chosen is None:
        raise NotFound("there is no earlier version of this file", code="no_earlier_version")
    restored = await restore(store, chosen, files, path)
    digest = chosen.manifest["files"][0].get("sha256", "")
    return TextSaved(path=path, sha256=digest, size=restored.size, backup_id=chosen.id), chosen
