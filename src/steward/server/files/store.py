"""A tenant's files, one directory per group: `<data_dir>/tenants/<tenant id>/<group id>/...`.

Directories are named by id, not by slug or group name, so a rename moves nothing. Every
relative path is checked before use and no symbolic link is followed anywhere at or below the
tenant's directory: names are refused when they could mean something else to another layer
(`..`, separators, percent-encoding, control characters), and files are opened one directory
at a time with `O_NOFOLLOW`, so a link planted between the check and the open is refused too.
The data dir and `tenants/` themselves may be links: where they live is the operator's choice.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import stat
import unicodedata
import uuid
from collections.abc import Iterator, Sequence
from io import BufferedReader, BufferedWriter
from pathlib import Path
from urllib.parse import unquote

from steward.server.errors import InvalidInput

DIR_MODE = 0o750
FILE_MODE = 0o640
MAX_NAME_BYTES = 255
_DRIVE = re.compile(r"^[A-Za-z]:")
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC


def tenants_root(data_dir: Path) -> Path:
    """The directory holding every tenant's files."""
    return data_dir.absolute() / "tenants"


def _unsafe(relative: str, reason: str) -> InvalidInput:
    return InvalidInput(f"unsafe path {relative!r}: {reason}", code="unsafe_path")


def _safe_parts(relative: str) -> list[str]:
    """The components of a relative path, or `unsafe_path` if it is not a plain one."""
    if not relative:
        raise _unsafe(relative, "empty")
    if any(unicodedata.category(ch) == "Cc" for ch in relative):
        raise _unsafe(relative, "control character")
    if "\\" in relative:
        raise _unsafe(relative, "backslash")
    if relative.startswith("/") or _DRIVE.match(relative):
        raise _unsafe(relative, "absolute")
    if unquote(relative) != relative:
        raise _unsafe(relative, "percent-encoded")
    parts = relative.split("/")
    for part in parts:
        if part in {"", ".", ".."}:
            raise _unsafe(relative, f"component {part!r}")
        try:
            size = len(os.fsencode(part))
        except UnicodeEncodeError:
            raise _unsafe(relative, "not encodable") from None
        if size > MAX_NAME_BYTES:
            raise _unsafe(relative, f"component longer than {MAX_NAME_BYTES} bytes")
    return parts


def _is_link(name: str, dir_fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _open_at(name: str, flags: int, dir_fd: int, relative: str) -> int:
    """`os.open` relative to `dir_fd`, a link in the last place refused as `unsafe_path`
    (ELOOP from O_NOFOLLOW, or ENOTDIR when O_DIRECTORY meets the link itself)."""
    try:
        return os.open(name, flags, FILE_MODE, dir_fd=dir_fd)
    except OSError as error:
        if error.errno == errno.ELOOP or (error.errno == errno.ENOTDIR and _is_link(name, dir_fd)):
            raise _unsafe(relative, "symbolic link") from None
        raise


def _open_dirs(base: Path, names: Sequence[str], *, create: bool, relative: str) -> int:
    """A descriptor of `base/names...`, walked one level at a time without following links;
    missing directories are made (mode 0o750) when `create`. The caller closes it."""
    fd = os.open(base, _DIR_FLAGS)
    try:
        for name in names:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, DIR_MODE, dir_fd=fd)
            next_fd = _open_at(name, _DIR_FLAGS, fd, relative)
            os.close(fd)
            fd = next_fd
    except BaseException:
        os.close(fd)
        raise
    return fd


class TenantStore:
    """One tenant's file store. Group directories are named by group id."""

    def __init__(self, data_dir: Path, tenant_id: uuid.UUID) -> None:
        self.tenants_root = tenants_root(data_dir)
        self.tenant_id = tenant_id
        self.root = self.tenants_root / str(tenant_id)

    def group_root(self, group_id: uuid.UUID) -> Path:
        return self.root / str(group_id)

    def _names(self, group_id: uuid.UUID, parts: Sequence[str] = ()) -> list[str]:
        """The components below `tenants_root` down to `parts`."""
        return [str(self.tenant_id), str(group_id), *parts]

    def resolve(self, group_id: uuid.UUID, relative: str) -> Path:
        """The absolute path of `relative` in the group's directory, or `unsafe_path`."""
        return self._check(group_id, relative)[0]

    def _check(self, group_id: uuid.UUID, relative: str) -> tuple[Path, list[str]]:
        parts = _safe_parts(relative)
        path = self.tenants_root
        for name in self._names(group_id, parts):
            path = path / name
            if path.is_symlink():
                raise _unsafe(relative, f"{path} is a symbolic link")
            if not path.exists():
                break
        base = self.group_root(group_id).resolve()
        target = base.joinpath(*parts).resolve()
        if target == base or not target.is_relative_to(base):
            raise _unsafe(relative, "outside the group's directory")
        return target, parts

    def ensure_group_dir(self, group_id: uuid.UUID) -> Path:
        """Make the group's directory (and the tenant's) if missing; return it."""
        self.tenants_root.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        names = self._names(group_id)
        os.close(_open_dirs(self.tenants_root, names, create=True, relative=str(group_id)))
        return self.group_root(group_id)

    def open_for_write(self, group_id: uuid.UUID, relative: str) -> BufferedWriter:
        """Create or truncate a file (mode 0o640), making its directories as needed."""
        *dirs, name = self._check(group_id, relative)[1]
        self.tenants_root.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | _CLOEXEC
        fd = self._open(group_id, dirs, name, flags, create=True, relative=relative)
        return os.fdopen(fd, "wb")

    def open_for_read(self, group_id: uuid.UUID, relative: str) -> BufferedReader:
        """Open an existing file; `FileNotFoundError` when it is not there."""
        *dirs, name = self._check(group_id, relative)[1]
        flags = os.O_RDONLY | os.O_NOFOLLOW | _CLOEXEC
        fd = self._open(group_id, dirs, name, flags, create=False, relative=relative)
        return os.fdopen(fd, "rb")

    def _open(
        self,
        group_id: uuid.UUID,
        dirs: Sequence[str],
        name: str,
        flags: int,
        *,
        create: bool,
        relative: str,
    ) -> int:
        names = self._names(group_id, dirs)
        dir_fd = _open_dirs(self.tenants_root, names, create=create, relative=relative)
        try:
            return _open_at(name, flags, dir_fd, relative)
        finally:
            os.close(dir_fd)

    def remove_tree(self, group_id: uuid.UUID, relative: str) -> None:
        """Delete a file or directory of the group's store with everything in it (links are
        removed, not followed); nothing when it is missing."""
        target = self._check(group_id, relative)[0]
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.exists():
            shutil.rmtree(target)

    def remove_empty_dir(self, group_id: uuid.UUID, relative: str) -> bool:
        """Remove a directory of the group's store if it is empty (never its contents: a
        file that arrived meanwhile keeps it); False when it stays."""
        target = self._check(group_id, relative)[0]
        try:
            os.rmdir(target)
        except OSError:
            return False
        return True

    def backup_dirs(self) -> Iterator[tuple[uuid.UUID, str, float]]:
        """Every backup directory in the store, `<group>/backups/<device>/<backup>`, as (group
        id, path relative to the group, newest modification time in it). Names that are not
        ids, and links, are skipped (nothing here made them)."""
        self.check_root()
        for group in _plain_dirs(self.root):
            group_id = _uuid(group.name)
            if group_id is None:
                continue
            for device in _plain_dirs(Path(group.path) / "backups"):
                if _uuid(device.name) is None:
                    continue
                for backup in _plain_dirs(Path(device.path)):
                    if _uuid(backup.name) is not None:
                        relative = f"backups/{device.name}/{backup.name}"
                        yield group_id, relative, _newest_mtime(backup.path)

    def check_root(self) -> None:
        """Refuse (`unsafe_path`) a tenant directory that is a link, not a directory, or not
        directly inside `tenants_root`. A missing one is fine."""
        if self.root.is_symlink() or (self.root.exists() and not self.root.is_dir()):
            raise _unsafe(str(self.root), "not a plain directory")
        if self.root.resolve().parent != self.tenants_root.resolve():
            raise _unsafe(str(self.root), f"outside {self.tenants_root}")

    def remove_tenant_files(self) -> None:
        """Delete the tenant's directory with everything in it (links are removed, not
        followed)."""
        self.check_root()
        if self.root.exists():
            shutil.rmtree(self.root)


def _plain_dirs(path: Path) -> list[os.DirEntry[str]]:
    """The directories in `path` (links not followed); none when it is missing."""
    try:
        with os.scandir(path) as entries:
            return [e for e in entries if e.is_dir(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _uuid(name: str) -> uuid.UUID | None:
    try:
        value = uuid.UUID(name)
    except ValueError:
        return None
    return value if str(value) == name else None


def _newest_mtime(path: str) -> float:
    """The latest modification time of a directory and everything below it (links are not
    followed): a backup being written keeps touching its blobs."""
    newest = os.lstat(path).st_mtime
    for directory, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            with contextlib.suppress(OSError):
                newest = max(newest, os.lstat(os.path.join(directory, name)).st_mtime)
    return newest
