"""The tenant's file policy (roots per OS, limits, backup retention) and the check every path
from a request passes before it goes to an agent.

The server cannot resolve links on the device; it refuses what is wrong on its face (relative,
`..`, NUL and control characters, percent-encoding, overlong, outside the roots) and the agent
checks again after resolving links (`agent/_fileops.py`).
"""

from __future__ import annotations

import ntpath
import posixpath
import re
import unicodedata
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from steward.protocol.streams import MAX_PATH_CHARS
from steward.server.audit.auditor import Auditor
from steward.server.db.base import utcnow
from steward.server.errors import InvalidInput, PermissionDenied
from steward.server.files.models import FilePolicy

DEFAULT_LINUX_ROOTS = ["/home", "/srv", "/tmp", "/var/log"]  # noqa: S108 (a place to browse)
DEFAULT_WINDOWS_ROOTS = ["C:\\Users", "C:\\ProgramData\\Steward", "C:\\Temp"]
DEFAULT_MAX_UPLOAD_BYTES = 2 * 1024**3
DEFAULT_MAX_EDITOR_BYTES = 1024 * 1024
DEFAULT_MAX_BACKUP_BYTES = 1024**3
DEFAULT_KEEP_VERSIONS = 10
DEFAULT_KEEP_DAYS = 30
MAX_ROOTS = 32

# Directories of the operating system itself: not a root unless the tenant allows them.
_LINUX_SYSTEM = ("/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/root",
                 "/sbin", "/sys", "/usr", "/var", "/var/lib", "/run")  # fmt: skip
_WINDOWS_SYSTEM = ("c:\\", "c:\\windows", "c:\\program files", "c:\\program files (x86)")
_DRIVE = re.compile(r"^[A-Za-z]:\\")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")


@dataclass(frozen=True, slots=True)
class Policy:
    linux_roots: tuple[str, ...] = tuple(DEFAULT_LINUX_ROOTS)
    windows_roots: tuple[str, ...] = tuple(DEFAULT_WINDOWS_ROOTS)
    allow_system_dirs: bool = False
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_editor_bytes: int = DEFAULT_MAX_EDITOR_BYTES
    max_backup_bytes: int = DEFAULT_MAX_BACKUP_BYTES
    backup_keep_versions: int = DEFAULT_KEEP_VERSIONS
    backup_keep_days: int = DEFAULT_KEEP_DAYS

    def roots_for(self, os_name: str) -> list[str]:
        return list(self.windows_roots if is_windows(os_name) else self.linux_roots)


def is_windows(os_name: str) -> bool:
    return os_name.lower().startswith("win")


async def load_policy(session: AsyncSession) -> Policy:
    """The bound tenant's policy (the defaults when it never changed them)."""
    row = (await session.execute(select(FilePolicy))).scalar_one_or_none()
    if row is None:
        return Policy()
    return Policy(
        linux_roots=tuple(row.linux_roots),
        windows_roots=tuple(row.windows_roots),
        allow_system_dirs=row.allow_system_dirs,
        max_upload_bytes=row.max_upload_bytes,
        max_editor_bytes=row.max_editor_bytes,
        max_backup_bytes=row.max_backup_bytes,
        backup_keep_versions=row.backup_keep_versions,
        backup_keep_days=row.backup_keep_days,
    )


async def save_policy(session: AsyncSession, policy: Policy, updated_by: str) -> Policy:
    """Replace the bound tenant's policy (roots checked: no system directory unless allowed)."""
    policy = Policy(
        linux_roots=tuple(check_root(r, windows=False, allow_system=policy.allow_system_dirs)
                          for r in policy.linux_roots),
        windows_roots=tuple(check_root(r, windows=True, allow_system=policy.allow_system_dirs)
                            for r in policy.windows_roots),
        **{name: getattr(policy, name) for name in _LIMITS},
    )  # fmt: skip
    row = (await session.execute(select(FilePolicy))).scalar_one_or_none()
    if row is None:
        row = FilePolicy()
        session.add(row)
    row.linux_roots = list(policy.linux_roots)
    row.windows_roots = list(policy.windows_roots)
    for name in _LIMITS:
        setattr(row, name, getattr(policy, name))
    row.updated_at = utcnow()
    row.updated_by = updated_by
    await session.flush()
    return policy


async def change_policy(
    session: AsyncSession, auditor: Auditor, policy: Policy, updated_by: str
) -> Policy:
    """`save_policy`, committed, then audited (`file.policy.update`, with the values sent):
    what the API and the console both do."""
    saved = await save_policy(session, policy, updated_by)
    await session.commit()
    await auditor("file.policy.update", risk="high", detail=_detail(policy))
    return saved


def _detail(policy: Policy) -> dict[str, Any]:
    values = {f.name: getattr(policy, f.name) for f in fields(policy)}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


async def policy_updated_at(session: AsyncSession) -> datetime | None:
    """When the bound tenant last changed its policy (None: never, the defaults apply)."""
    return await session.scalar(select(FilePolicy.updated_at))


_LIMITS = (
    "allow_system_dirs",
    "max_upload_bytes",
    "max_editor_bytes",
    "max_backup_bytes",
    "backup_keep_versions",
    "backup_keep_days",
)


def check_root(root: str, *, windows: bool, allow_system: bool) -> str:
    """`root` normalised, if it may be a root: `unsafe_path` when malformed (see
    `check_syntax`), `system_directory` when the OS's own and they are not allowed."""
    normal = check_syntax(root, windows=windows)
    lowered = normal.lower() if windows else normal
    system = _WINDOWS_SYSTEM if windows else _LINUX_SYSTEM
    if lowered in system and not allow_system:
        raise InvalidInput(
            f"{root!r} is a system directory: allow system directories first",
            code="system_directory",
        )
    return normal


def _unsafe(path: str, reason: str) -> InvalidInput:
    shown = path if len(path) <= 200 else path[:200] + "..."
    return InvalidInput(f"unsafe path {shown!r}: {reason}", code="unsafe_path")


def check_syntax(path: str, *, windows: bool) -> str:
    """`path` normalised, if it is a plain absolute path of the device's OS; else
    `unsafe_path` (422)."""
    if not path:
        raise _unsafe(path, "empty")
    if len(path) > MAX_PATH_CHARS:
        raise _unsafe(path, f"longer than {MAX_PATH_CHARS} characters")
    if any(unicodedata.category(ch) in {"Cc", "Cf"} for ch in path):
        raise _unsafe(path, "NUL or control character")
    if _PERCENT.search(path) and unquote(path) != path:
        raise _unsafe(path, "percent-encoded")
    if windows:
        if not _DRIVE.match(path) or "/" in path:
            raise _unsafe(path, "not an absolute Windows path (C:\\...)")
        parts = path[3:].split("\\")
    else:
        if not path.startswith("/") or "\\" in path:
            raise _unsafe(path, "not an absolute path")
        parts = path[1:].split("/")
    if any(part in {".", ".."} for part in parts):
        raise _unsafe(path, "'.' or '..' component")
    normal = ntpath.normpath(path) if windows else posixpath.normpath(path)
    if not windows and normal.startswith("//"):
        normal = "/" + normal.lstrip("/")
    return normal


def _inside(path: str, root: str, windows: bool) -> bool:
    if windows:
        path, root = path.lower(), root.lower()
        separator = "\\"
    else:
        separator = "/"
    return path == root or path.startswith(root.rstrip(separator) + separator)


def check_path(path: str, policy: Policy, os_name: str) -> str:
    """A path of a request, normalised and checked against the tenant's roots for this
    device's OS: `unsafe_path` (422) when malformed, `outside_roots` (403) when elsewhere."""
    windows = is_windows(os_name)
    normal = check_syntax(path, windows=windows)
    if not any(_inside(normal, root, windows) for root in policy.roots_for(os_name)):
        raise PermissionDenied(
            f"{normal!r} is outside the directories this organisation allows",
            code="outside_roots",
        )
    return normal


def join(directory: str, relative: str, os_name: str) -> str:
    """`relative` (as the agent reported it, "/"-separated) below `directory`; checked again
    by `check_path` by the caller."""
    windows = is_windows(os_name)
    parts = [p for p in relative.replace("\\", "/").split("/") if p]
    if not parts or any(p in {".", ".."} for p in parts):
        raise _unsafe(relative, "not a plain relative path")
    return (ntpath if windows else posixpath).join(directory, *parts)


def relative_to(path: str, directory: str, os_name: str) -> str:
    """`path` below `directory`, "/"-separated (for manifests)."""
    windows = is_windows(os_name)
    module = ntpath if windows else posixpath
    if not _inside(path, directory, windows) or path == directory:
        raise _unsafe(path, f"not below {directory!r}")
    return module.relpath(path, directory).replace("\\", "/")
