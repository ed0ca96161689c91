"""The rules of file access: whose device, which paths, and the plain operations (list, stat,
make a directory, rename, delete). Transfers, the editor and backups build on `DeviceFiles`.

A device's files are reached only through `device_files()`: it checks the principal's
permission and scope on the device (404 outside it), loads the tenant's policy, and ends the
session's transaction before anything talks to the agent (an agent may take seconds to answer;
no database connection waits for it).
"""

from __future__ import annotations

import ntpath
import posixpath
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from steward.server.accounts.permissions import Permission
from steward.server.accounts.principal import Principal
from steward.server.devices.access import device_for
from steward.server.errors import InvalidInput
from steward.server.files.policy import Policy, check_path, is_windows, load_policy
from steward.server.files.remote import MAX_ENTRIES, Relay, RemoteFiles
from steward.server.files.schemas import EntryPublic, Listing
from steward.server.files.store import TenantStore


@dataclass(frozen=True, slots=True)
class DeviceRef:
    id: uuid.UUID
    tenant_id: uuid.UUID
    group_id: uuid.UUID
    hostname: str
    os_name: str


@dataclass(frozen=True, slots=True)
class DeviceFiles:
    """One device's files as one principal may reach them."""

    device: DeviceRef
    policy: Policy
    remote: RemoteFiles
    actor: str

    def path(self, raw: str) -> str:
        """`raw` checked (syntax, then the policy's roots for this device's OS)."""
        return check_path(raw, self.policy, self.device.os_name)

    @property
    def roots(self) -> list[str]:
        return self.policy.roots_for(self.device.os_name)

    def parent(self, path: str) -> str | None:
        """The directory above `path`, while it is still inside a root."""
        module = ntpath if is_windows(self.device.os_name) else posixpath
        above = module.dirname(path)
        if above == path:
            return None
        try:
            return self.path(above)
        except Exception:
            return None


async def device_files(
    session: AsyncSession,
    relay: Relay,
    principal: Principal,
    permission: Permission,
    device_id: uuid.UUID,
) -> DeviceFiles:
    """The device's files, if `principal` may `permission` on it. Ends the session's
    transaction (the caller may use the session again: a new one begins)."""
    device = await device_for(session, principal, permission, device_id)
    policy = await load_policy(session)
    ref = DeviceRef(device.id, device.tenant_id, device.group_id, device.hostname, device.os_name)
    await session.rollback()  # release the connection while the agent works
    roots = policy.roots_for(ref.os_name)
    return DeviceFiles(ref, policy, RemoteFiles(relay, ref.id, roots), principal.actor)


def default_path(files: DeviceFiles) -> str:
    return files.roots[0] if files.roots else ("C:\\" if is_windows(files.device.os_name) else "/")


async def list_directory(files: DeviceFiles, raw: str | None) -> Listing:
    path = files.path(raw or default_path(files))
    entries, truncated = await files.remote.listdir(path, MAX_ENTRIES)
    shown = sorted(
        (EntryPublic.of(e) for e in entries), key=lambda e: (e.kind != "dir", e.name.lower())
    )
    return Listing(
        path=path,
        parent=files.parent(path),
        entries=shown,
        truncated=truncated,
        roots=files.roots,
    )


async def stat(files: DeviceFiles, raw: str) -> EntryPublic:
    return EntryPublic.of(await files.remote.stat(files.path(raw)))


async def make_directory(files: DeviceFiles, raw: str, *, parents: bool) -> str:
    path = files.path(raw)
    await files.remote.mkdir(path, parents=parents)
    return path


async def rename(files: DeviceFiles, raw: str, raw_target: str) -> tuple[str, str]:
    path, target = files.path(raw), files.path(raw_target)
    if path in files.roots:
        raise InvalidInput("an allowed root cannot be renamed", code="unsafe_path")
    await files.remote.rename(path, target)
    return path, target


async def delete(files: DeviceFiles, raw: str, *, recursive: bool) -> str:
    path = files.path(raw)
    if path in files.roots:
        raise InvalidInput("an allowed root cannot be deleted", code="unsafe_path")
    await files.remote.delete(path, recursive=recursive)
    return path


def tenant_store(data_dir: Path, tenant_id: uuid.UUID) -> TenantStore:
    return TenantStore(data_dir, tenant_id)
